"""Atomic training checkpoints: ``RUN/checkpoints/step-XXXXXX/`` plus a ``latest`` link.

A checkpoint folder holds

* ``model.safetensors``: the full (unwrapped) model state, shared tensors handled by
  ``safetensors.torch.save_model``;
* ``optimizer.pt`` / ``scheduler.pt`` (and ``scaler.pt`` under fp16): their
  ``state_dict`` (plain tensors and numbers, loaded with ``weights_only=True``);
* ``rng-rank{r}.json`` + ``rng-rank{r}.safetensors``: python / numpy / torch (CPU and
  CUDA) generator states of every process;
* ``trainer_state.json``: step, sampler state and anything else the loop needs;
* ``ema.safetensors`` when the run averages its weights (:mod:`vlaworks.train.ema`);
* whatever the caller's ``extra_save(path)`` writes (policy config, normaliser, ...).

Atomicity: everything is written into ``.tmp-step-XXXXXX`` and renamed to its final
name only when complete; then ``latest`` (a relative symlink) is replaced atomically
with ``os.replace``; only then are old checkpoints pruned. A crash at any point leaves
``latest`` pointing at a complete checkpoint. Stale temp folders are removed by the
next save or resume.

Damage after the fact (a truncated file, a partial copy): :func:`load_latest` checks each
checkpoint's files before loading (:mod:`vlaworks.safefiles`) and falls back from a
damaged ``latest`` to the newest intact checkpoint, with a warning; the damaged folder is
renamed ``step-XXXXXX.corrupt`` so that it is kept for inspection but never pruned into
or resumed from again.

Multi-process: every rank calls :func:`save_checkpoint` (each writes its own RNG
state); rank 0 writes the rest and does the renames, with barriers in between. This
suits DDP (each rank holds the full model); FSDP would need sharded state dicts.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file, save_model
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from vlaworks.models.weights import load_weights
from vlaworks.safefiles import CheckpointError, read_json, verify_safetensors, verify_torch_file
from vlaworks.train.ema import EMA_FILE, WeightEma

STEP_DIR = re.compile(r"^step-(\d{6,})$")
LATEST = "latest"
log = logging.getLogger(__name__)


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoint folders under ``ckpt_root``, oldest step first."""
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir() if p.is_dir() and not p.is_symlink() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The folder ``latest`` points at, or None when there is no checkpoint yet."""
    link = ckpt_root / LATEST
    if not link.is_symlink():
        return None
    target = link.resolve()
    if not (target / "trainer_state.json").is_file():
        raise FileNotFoundError(
            f"{link} points at {target}, which is not a complete checkpoint; "
            f"point it at one of {[p.name for p in list_checkpoints(ckpt_root)]} or remove it."
        )
    return target


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`CheckpointError` naming the first missing, truncated or corrupt file of
    checkpoint ``path`` (headers and directories only; no tensor is loaded)."""
    path = Path(path)
    state = read_json(path / "trainer_state.json")
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path / 'trainer_state.json'} has no 'step'; the checkpoint is incomplete.")
    verify_safetensors(path / "model.safetensors")
    if (path / EMA_FILE).exists():
        verify_safetensors(path / EMA_FILE)
    for name in ("optimizer.pt", "scheduler.pt", *(["scaler.pt"] if (path / "scaler.pt").exists() else [])):
        verify_torch_file(path / name)
    for rng in sorted(path.glob("rng-rank*.json")):
        read_json(rng)
        verify_safetensors(rng.with_suffix(".safetensors"))


def resume_candidates(ckpt_root: Path) -> list[Path]:
    """Checkpoints to resume from, best first: the one ``latest`` points at, then the
    others from the newest step down."""
    found = list(reversed(list_checkpoints(ckpt_root)))
    link = ckpt_root / LATEST
    target = link.resolve() if link.is_symlink() else None
    return sorted(found, key=lambda p: p.resolve() != target)  # stable: the rest keep their order


def load_latest(
    accelerator: Accelerator,
    ckpt_root: Path,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    ema: WeightEma | None = None,
) -> tuple[Path | None, dict[str, Any] | None]:
    """Restore the newest intact checkpoint (see the module docstring); ``(None, None)``
    when there is none yet. Damaged ones before it are renamed ``*.corrupt`` and logged;
    if every checkpoint is damaged, raise :class:`CheckpointError` naming the newest."""
    damaged: list[tuple[Path, CheckpointError]] = []
    chosen: Path | None = None
    state: dict[str, Any] | None = None
    for path in resume_candidates(ckpt_root):
        try:
            verify_checkpoint(path)
        except CheckpointError as err:
            damaged.append((path, err))
            continue
        chosen, state = path, load_checkpoint(accelerator, path, model, optimizer, scheduler, ema)
        break
    if damaged and chosen is None:
        raise CheckpointError(
            f"No usable checkpoint in {ckpt_root}: {damaged[0][1]} Otherwise start the run again with "
            "--fresh (train(resume=False))."
        )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and damaged:
        for path, err in damaged:
            path.rename(path.with_name(path.name + ".corrupt"))
            log.warning(
                "%s Resuming from %s instead; the damaged checkpoint is kept as %s.corrupt.",
                err,
                chosen,
                path.name,
            )
        _point_latest(ckpt_root, chosen)  # type: ignore[arg-type]
    accelerator.wait_for_everyone()
    return chosen, state


def save_checkpoint(
    accelerator: Accelerator,
    ckpt_root: Path,
    step: int,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    trainer_state: dict[str, Any],
    *,
    keep_last: int,
    extra_save: Callable[[Path], None] | None = None,
    ema: WeightEma | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, keep the last ``keep_last``."""
    final = ckpt_root / step_dir_name(step)
    tmp = ckpt_root / f".tmp-{final.name}"
    main = accelerator.is_main_process
    if main:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    _save_rng(tmp, accelerator.process_index)
    sharded = is_sharded(model)
    if sharded:  # collectives: every rank gathers, rank 0 keeps the full tensors
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        full_model = get_model_state_dict(model, options=options)
        full_optim = get_optimizer_state_dict(model, optimizer, options=options)
    if main:
        if sharded:
            tied = _tied_aliases(accelerator.unwrap_model(model))
            save_file(
                {k: v.contiguous() for k, v in full_model.items() if k not in tied},
                str(tmp / "model.safetensors"),
                metadata={"format": "pt"},
            )
            torch.save(full_optim, tmp / "optimizer.pt")
        else:
            save_model(accelerator.unwrap_model(model), str(tmp / "model.safetensors"))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if ema is not None:
            ema.save(tmp / EMA_FILE)
        if accelerator.scaler is not None:  # fp16 loss scale, needed to resume fp16 runs exactly
            torch.save(accelerator.scaler.state_dict(), tmp / "scaler.pt")
        if extra_save is not None:
            extra_save(tmp)
        state = dict(trainer_state, step=step, world_size=accelerator.num_processes)
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    accelerator.wait_for_everyone()
    if main:
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step (e.g. after resuming from it): swap, never delete first
            trash = ckpt_root / f".old-{final.name}"
            shutil.rmtree(trash, ignore_errors=True)
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash)
        else:
            tmp.rename(final)
        _point_latest(ckpt_root, final)
        for old in list_checkpoints(ckpt_root)[:-keep_last]:
            if old != final:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` is FSDP-sharded (accelerate's state does not say so on CPU)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _tied_aliases(model: nn.Module) -> set[str]:
    """Names of parameters that share their tensor with another name (tied embeddings), all
    but the alphabetically first of each group: the ones ``save_model`` leaves out and
    ``load_model`` re-ties."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return {name for names in groups.values() for name in sorted(names)[1:]}


def load_checkpoint(
    accelerator: Accelerator,
    path: Path,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    ema: WeightEma | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler, the weight average (when the run keeps one) and
    this rank's RNG states; return trainer state."""
    path = Path(path)
    state_file = path / "trainer_state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{path} is not a training checkpoint (no trainer_state.json).")
    weights = path / "model.safetensors"
    missing, unexpected = load_weights(accelerator.unwrap_model(model), weights, accelerator.device)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match the model being trained: missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}; resume with the settings the run was started with."
        )
    if (ema is not None) != (path / EMA_FILE).is_file():
        raise CheckpointError(
            f"{path} was saved {'without' if ema is not None else 'with'} a weight average ({EMA_FILE}) but "
            "this run is configured the other way; resume with the train.ema_decay the run was started with."
        )
    if ema is not None:
        ema.load(path / EMA_FILE)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    if accelerator.scaler is not None and (path / "scaler.pt").is_file():
        accelerator.scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
    state = json.loads(state_file.read_text())
    rank = accelerator.process_index
    if (path / f"rng-rank{rank}.json").is_file():
        _load_rng(path, rank)
    else:
        # Resumed on more processes than were saved: give this rank fresh, distinct
        # streams (loss curves then match an uninterrupted run only statistically).
        seed = int(np.random.SeedSequence([int(state["step"]), rank]).generate_state(1)[0])
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    return state


def _save_rng(folder: Path, rank: int) -> None:
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    save_file(tensors, str(folder / f"rng-rank{rank}.safetensors"))
    (folder / f"rng-rank{rank}.json").write_text(json.dumps(meta))


def _load_rng(folder: Path, rank: int) -> None:
    meta = json.loads((folder / f"rng-rank{rank}.json").read_text())
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    tensors = load_file(str(folder / f"rng-rank{rank}.safetensors"))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _point_latest(ckpt_root: Path, target: Path) -> None:
    tmp_link = ckpt_root / f".{LATEST}.tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(target.name)
    os.replace(tmp_link, ckpt_root / LATEST)


def _fsync_dir(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


def remove_stale_temps(ckpt_root: Path) -> None:
    """Delete half-written ``.tmp-*`` / ``.old-*`` folders left by a crash."""
    if ckpt_root.is_dir():
        for p in ckpt_root.iterdir():
            if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(".old-")):
                shutil.rmtree(p)
