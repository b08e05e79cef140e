"""What may be written where: the run folder rule and the dataset a run is tied to.

A run folder (``vlaworks train --out RUN``) is new, empty, or a folder an earlier run
wrote (it holds :data:`RUN_MARKERS`); anything else is refused, so training never
scatters checkpoints among someone's files, nor into the dataset it reads. ``--fresh``
deletes only :data:`RUN_ENTRIES`, the files a run writes; anything else in the folder
(an exported backbone, notes) stays.

``RUN/dataset.json`` records the dataset's identity: its path and a fingerprint of
``meta/info.json`` and ``meta/stats.json`` (schema, counts and the normalisation
statistics a policy is trained with). Resuming a run from a checkpoint on a dataset with
another fingerprint is an error naming both datasets; a moved copy of the same dataset
(same fingerprint, other path) resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from vlaworks.data import layout

DATASET_FILE = "dataset.json"
#: files and folders whose presence marks a folder as a run folder
RUN_MARKERS = ("recipe.json", "train_config.json", DATASET_FILE, "checkpoints", "stages")
#: everything a run writes into its folder (what --fresh replaces)
RUN_ENTRIES = (
    *RUN_MARKERS,
    "metrics.csv",
    "metrics.csv.tmp",
    "policy",
    ".policy.tmp",
    ".policy.old",
    "tokenizer_fit.json",
    "vl_cotrain.npz",
    "tensorboard",
    "init.json",
    "stages",
)
log = logging.getLogger(__name__)


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (foreign contents, another dataset, ...)."""


def dataset_identity(data: Path) -> dict[str, str]:
    """``{"path", "fingerprint"}`` of the dataset at ``data`` (see the module docstring)."""
    digest = hashlib.sha256()
    for rel in (layout.INFO_PATH, layout.STATS_PATH):
        path = Path(data) / rel
        digest.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return {"path": str(Path(data).resolve()), "fingerprint": digest.hexdigest()[:16]}


def check_paths(data: Path, out: Path) -> None:
    """The run folder must not be the dataset folder nor lie inside it."""
    data_abs, out_abs = Path(data).resolve(), Path(out).resolve()
    if out_abs == data_abs or data_abs in out_abs.parents:
        raise RunFolderError(
            f"--out {out} is {'the dataset folder' if out_abs == data_abs else 'inside the dataset folder'} "
            f"{data}; checkpoints would mix with the data. Choose a run folder outside it, e.g. runs/NAME."
        )


def _listing(folder: Path, limit: int = 5) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_run_folder(out: Path, data: Path, *, fresh: bool, resuming: bool) -> dict[str, str]:
    """Refuse ``out`` unless the run folder rule allows it and, when ``resuming`` (a checkpoint
    will be loaded) without ``fresh``, the recorded dataset matches ``data``; writes nothing.
    Returns the dataset identity for :func:`start_run_folder`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file; pass a folder for the run.")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in RUN_MARKERS):
        raise RunFolderError(
            f"--out {out} is not a run folder (it holds {_listing(out)}); train writes only into a new or "
            "empty folder or an earlier run's folder. Choose another --out."
        )
    identity = dataset_identity(data)
    if resuming and not fresh:
        _check_same_dataset(out, identity)
    return identity


def start_run_folder(out: Path, identity: dict[str, str], *, fresh: bool) -> None:
    """Create ``out`` (with ``fresh``, first delete what an earlier run wrote there) and
    record the dataset identity."""
    out = Path(out)
    if fresh:
        removed = [name for name in RUN_ENTRIES if (out / name).exists()]
        for name in removed:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if removed:
            log.warning("--fresh: removed %s from %s (an earlier run's files)", ", ".join(removed), out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DATASET_FILE).write_text(json.dumps(identity, indent=1) + "\n")


def _check_same_dataset(out: Path, identity: dict[str, str]) -> None:
    recorded = read_dataset_identity(out)
    if recorded is None or recorded.get("fingerprint") == identity["fingerprint"]:
        return
    raise RunFolderError(
        f"Run {out} was trained on {recorded.get('path')} (fingerprint {recorded.get('fingerprint')}) but "
        f"--data is {identity['path']} (fingerprint {identity['fingerprint']}); start a new run there with "
        "`vlaworks train --fresh`, or choose another --out."
    )


def read_dataset_identity(out: Path) -> dict[str, Any] | None:
    """The dataset identity run ``out`` recorded (``None``: none recorded or unreadable)."""
    try:
        recorded = json.loads((out / DATASET_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # a run from before dataset identities were recorded: nothing to compare
    return recorded if isinstance(recorded, dict) else None
