"""Policy checkpoints: one self-describing folder per policy.

Layout of ``path/``:

* ``config.json``: the :class:`~vlaworks.models.config.PolicyConfig`;
* ``model.safetensors``: the whole policy state (backbone, token sources, head, auxiliary
  modules), written with ``safetensors.torch.save_model`` so tied tensors are stored once.
  LoRA adapters are stored *unmerged* (``...base_layer.weight`` + ``...lora_A/B``): loading
  re-injects them from the config, so a checkpoint resumes training exactly as it was;
* ``normalizer.json``: the action / state statistics (``Normalizer.state_dict()``);
* ``processor.json``: the :class:`~vlaworks.processing.PolicyProcessor` settings (cameras,
  image size, chunk, state, training augmentation) that turn observations into batches;
* ``tokenizer/``: the backbone tokenizer's own files, for tools that read text without
  building the model;
* ``ema.safetensors`` (trainer checkpoints of runs with ``train.ema_decay`` only): the
  averaged trainable weights, which loading applies over ``model.safetensors``.

Every command that reads a trained policy (eval, probe, VQA, offline error,
export-backbone, compare) names it the same way and goes through :func:`load_policy`,
which resolves the name with :func:`resolve_policy_folder`: a policy folder as is, or a
training run folder (``RUN/policy``, else the newest intact trainer checkpoint), so one
run always means one policy.

Loading first checks the files (:func:`verify_policy_folder`: a truncated or corrupt file
is a :class:`~vlaworks.safefiles.CheckpointError` naming it), then rebuilds the module
tree from ``config.json`` (the backbone from its registry name or the model folder named
in the config, then from-scratch / LoRA / freezing switches) and loads
``model.safetensors`` strictly. Saving is atomic: the folder is written beside the target
and swapped in, so a killed save leaves the previous policy. The trainer's checkpoints
share this layout: its ``model.safetensors`` is the same state, and
:func:`write_policy_files` writes the rest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, overload

import torch
from safetensors.torch import save_model
from torch import nn

from vlaworks.data.normalize import Normalizer
from vlaworks.models.config import PolicyConfig
from vlaworks.models.policy import VLAPolicy, build_policy
from vlaworks.models.weights import load_weights
from vlaworks.processing import PROCESSOR_FILE, PolicyProcessor
from vlaworks.safefiles import CheckpointError, read_json, verify_safetensors
from vlaworks.train.checkpoint import resume_candidates
from vlaworks.train.ema import EMA_FILE, apply_ema_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
NORMALIZER_FILE = "normalizer.json"
TOKENIZER_DIR = "tokenizer"
#: a training run folder's final policy (``train_policy`` writes it when training finishes)
RUN_POLICY_DIR = "policy"
#: a training run folder's resumable trainer checkpoints (each also a policy folder)
RUN_CHECKPOINTS_DIR = "checkpoints"

Model = TypeVar("Model", bound=nn.Module)
log = logging.getLogger(__name__)


def write_policy_files(policy: VLAPolicy, path: str | Path) -> None:
    """Write everything but the weights: config, normaliser stats and tokenizer files."""
    if policy.normalizer is None:
        raise ValueError(
            "Cannot save a policy without a normaliser: a checkpoint must carry the action statistics "
            "it was trained with. Build the policy with the dataset's Normalizer."
        )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    policy.config.save(out / CONFIG_FILE)
    (out / NORMALIZER_FILE).write_text(json.dumps(policy.normalizer.state_dict(), indent=1) + "\n")
    policy.processor.save(out)
    tokenizer = policy.backbone.tokenizer
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(out / TOKENIZER_DIR))


def save_policy(policy: VLAPolicy, path: str | Path) -> Path:
    """Write the checkpoint folder described in the module docstring (atomically: into a
    sibling temp folder, then swapped in); returns its path."""
    out = Path(path)
    tmp, old = out.with_name(f".{out.name}.tmp"), out.with_name(f".{out.name}.old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    write_policy_files(policy, tmp)
    save_model(policy, str(tmp / WEIGHTS_FILE))
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def verify_policy_folder(path: str | Path) -> Path:
    """Check that ``path`` holds a complete, readable policy checkpoint without building the
    model: config and normaliser parse (finite statistics), weights are not truncated.
    Raises ``FileNotFoundError`` when it is no checkpoint at all, :class:`CheckpointError`
    naming the damaged file otherwise; returns the folder."""
    folder = Path(path)
    missing = [
        f for f in (CONFIG_FILE, WEIGHTS_FILE, NORMALIZER_FILE, PROCESSOR_FILE) if not (folder / f).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a policy checkpoint: missing {missing}. Point at a folder written by "
            "save_policy (or a trainer checkpoint step folder)."
        )
    parsers = (
        (CONFIG_FILE, PolicyConfig.from_dict),
        (NORMALIZER_FILE, Normalizer.from_state_dict),
        (PROCESSOR_FILE, PolicyProcessor.from_dict),
    )
    for name, parse in parsers:
        data = read_json(folder / name)
        try:
            parse(data)
        except (KeyError, TypeError, ValueError) as err:
            reason = err.args[0] if err.args else type(err).__name__
            raise CheckpointError(f"{folder / name} cannot be used: {reason}") from err
    verify_safetensors(folder / WEIGHTS_FILE)
    if (folder / EMA_FILE).exists():
        verify_safetensors(folder / EMA_FILE)
    return folder


def resolve_policy_folder(path: str | os.PathLike[str]) -> Path:
    """The policy folder ``path`` names, as every command reads it:

    * a policy folder (it holds ``config.json``): itself, checked by
      :func:`verify_policy_folder` (a damaged file is an error naming it);
    * a training run folder: ``RUN/policy`` (the final policy), else the trainer
      checkpoints newest first (the one ``checkpoints/latest`` points at, then the others),
      the first whose policy files are intact. A damaged candidate is skipped with a
      warning and left in place (resolving only reads; resuming renames it ``*.corrupt``).

    Returns the resolved path (``latest`` followed). Raises ``FileNotFoundError`` when
    ``path`` holds no policy at all and :class:`CheckpointError` naming the newest damage
    when every candidate is damaged.
    """
    folder = Path(path)
    if (folder / CONFIG_FILE).is_file():
        return verify_policy_folder(folder).resolve()
    candidates = [folder / RUN_POLICY_DIR] if (folder / RUN_POLICY_DIR).is_dir() else []
    candidates += resume_candidates(folder / RUN_CHECKPOINTS_DIR)
    if not candidates:
        raise FileNotFoundError(
            f"No policy at {folder}: it is neither a policy folder (with {CONFIG_FILE}) nor a training run "
            f"(with {RUN_POLICY_DIR}/ or {RUN_CHECKPOINTS_DIR}/); pass the --out folder of `vlaworks train`."
        )
    damaged: list[tuple[Path, Exception]] = []
    for candidate in candidates:
        try:
            chosen = verify_policy_folder(candidate).resolve()
        except (CheckpointError, FileNotFoundError) as err:
            damaged.append((candidate, err))
            continue
        for bad, err in damaged:
            log.warning("%s Using %s instead of %s.", err, chosen, bad)
        return chosen
    raise CheckpointError(f"No usable policy in {folder}: {damaged[0][1]}")


@overload
def load_policy(
    source: str | os.PathLike[str],
    device: str | torch.device = ...,
    expected_stats: Mapping[str, Any] | Normalizer | None = ...,
) -> VLAPolicy: ...


@overload
def load_policy(
    source: Model,
    device: str | torch.device = ...,
    expected_stats: Mapping[str, Any] | Normalizer | None = ...,
) -> Model: ...


def load_policy(
    source: str | os.PathLike[str] | nn.Module,
    device: str | torch.device = "cpu",
    expected_stats: Mapping[str, Any] | Normalizer | None = None,
) -> nn.Module:
    """Rebuild the saved policy that ``source`` names (a policy or training run folder, see
    :func:`resolve_policy_folder`) on ``device``, in eval mode. An already built model (a
    policy, or a bare backbone for the probes) is returned as it is, so tools take either.

    ``expected_stats`` (a dataset's ``meta/stats.json`` dict or a Normalizer) is checked
    against a loaded checkpoint's normaliser: a missing key or a different dimension is an
    error, so a policy never silently runs with another robot's action layout.
    """
    if isinstance(source, nn.Module):
        return source
    folder = resolve_policy_folder(source)
    config = PolicyConfig.load(folder / CONFIG_FILE)
    normalizer = Normalizer.from_state_dict(json.loads((folder / NORMALIZER_FILE).read_text()))
    if expected_stats is not None:
        normalizer.check_compatible(expected_stats)
    # Weights come from the file, so skip the (possibly slow) from-scratch re-initialisation.
    policy = build_policy(replace(config, from_scratch=False), normalizer)
    policy.config = config
    # compared as rebuilt settings, so a file written before a setting existed (its default) still matches
    saved = PolicyProcessor.from_dict(read_json(folder / PROCESSOR_FILE)).to_dict()
    if saved != policy.processor.to_dict():
        raise CheckpointError(
            f"{folder / PROCESSOR_FILE} disagrees with {CONFIG_FILE} (cameras, image size, chunk, state); "
            "the folder mixes files of two policies: save the policy again."
        )
    missing_keys, unexpected = load_weights(policy, folder / WEIGHTS_FILE)
    if missing_keys or unexpected:
        raise ValueError(
            f"{folder / WEIGHTS_FILE} does not match the model built from {CONFIG_FILE}: "
            f"missing {sorted(missing_keys)[:8]}, unexpected {sorted(unexpected)[:8]}."
        )
    if (folder / EMA_FILE).is_file():  # a trainer checkpoint of a run that averages its weights
        apply_ema_file(policy, folder / EMA_FILE)
    return policy.to(device).eval()
