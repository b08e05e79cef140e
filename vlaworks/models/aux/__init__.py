"""Auxiliary losses beside the head's (registered in :data:`vlaworks.models.policy.AUX_LOSSES`)."""
