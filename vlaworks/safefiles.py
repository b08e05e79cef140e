"""Integrity checks of the files checkpoints are made of, without loading their tensors.

A process killed while writing, a full disk or a partial copy leaves a truncated file
whose loader fails deep inside a library (``SafetensorError: incomplete metadata``, a zip
error from ``torch.load``) without naming the file. These checks read only headers and
directory records, so they are cheap enough to run before every load, and they raise
:class:`CheckpointError` naming the file, which lets a resume fall back to an older
checkpoint instead of crashing.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or corrupt."""


def _damaged(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(f"{path} is truncated or corrupt ({err}); restore it or use another checkpoint.")


def verify_safetensors(path: Path) -> None:
    """The header of ``path`` parses and the file is as long as the header says."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as err:
        raise _damaged(path, err) from err


def verify_torch_file(path: Path) -> None:
    """``path`` is a complete ``torch.save`` archive (its zip directory, at the end, is readable)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete.")
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise _damaged(path, err) from err


def read_json(path: Path) -> Any:
    """Parse the JSON file ``path``; a missing or broken file is a :class:`CheckpointError`."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete.") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(path, err) from err
