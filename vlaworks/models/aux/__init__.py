"""Auxiliary losses (``PolicyConfig.aux_losses``, registry ``AUX_LOSSES`` in
:mod:`vlaworks.models.policy`): training-only objectives beside the head's, one file each."""
