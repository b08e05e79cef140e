"""Loading a saved state file into a module across transformers versions.

Hugging Face renames parameters between releases (e.g. DINOv2's
``attention.attention.key`` became ``attention.k_proj``) and upgrades old checkpoints in
``from_pretrained`` through its own conversion mapping. Our policies and backbone folders
are whole-module ``safetensors`` files loaded with ``load_state_dict``, which bypasses that
mapping, so a policy trained under one transformers release (say on a GPU cluster) would not
load under another. :func:`load_weights` loads strictly as before and, only when keys do not
match, renames the file's keys with transformers' own mapping for every Hugging Face
sub-model of the module (renamings only; weight *converters* that split or merge tensors
are not applied) and tries again.
"""

from __future__ import annotations

import os

import torch
from safetensors.torch import load_file, load_model
from torch import nn


def _hf_renamings(module: nn.Module) -> list[tuple[str, list]]:
    """``(prefix, renamings)`` for each outermost Hugging Face sub-model of ``module``:
    transformers' checkpoint renamings for it (its own nested sub-models included, scoped by
    transformers), with the sub-model's path in ``module`` as the key prefix."""
    from transformers import PreTrainedModel
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    found: list[tuple[str, list]] = []
    for path, sub in module.named_modules():
        if not isinstance(sub, PreTrainedModel):
            continue
        if any(path.startswith(outer + ".") for outer, _ in found if outer):
            continue  # covered by an enclosing model's scoped mapping
        renamings = [t for t in get_model_conversion_mapping(sub) if isinstance(t, WeightRenaming)]
        found.append((path, renamings))
    return [(path, renamings) for path, renamings in found if renamings]


def upgrade_keys(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the keys of ``module``'s Hugging Face sub-models renamed from older
    transformers names to the installed release's (keys no mapping touches stay)."""
    from transformers.core_model_loading import apply_renamings

    renamed = dict(state)
    for path, renamings in _hf_renamings(module):
        prefix = f"{path}." if path else ""
        for key in [k for k in renamed if k.startswith(prefix)]:
            new = prefix + apply_renamings(key[len(prefix) :], renamings)
            if new != key:
                renamed[new] = renamed.pop(key)
    return renamed


def load_weights(
    module: nn.Module, path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[list[str], list[str]]:
    """Load the safetensors file ``path`` into ``module``; return ``(missing, unexpected)``
    keys (both empty on success). Keys written by an older transformers release are renamed
    to the installed one's first (:func:`upgrade_keys`); tied tensors saved once count as
    loaded."""
    missing, unexpected = load_model(module, str(path), strict=False, device=str(device))
    if not missing and not unexpected:
        return [], []
    state = upgrade_keys(module, load_file(str(path), device=str(device)))
    own = module.state_dict()
    if not set(state) - set(own):
        result = module.load_state_dict(state, strict=False)
        loaded = {own[k].data_ptr() for k in state}
        still_missing = [k for k in result.missing_keys if own[k].data_ptr() not in loaded]
        return still_missing, list(result.unexpected_keys)
    return sorted(missing), sorted(unexpected)
