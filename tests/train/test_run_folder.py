"""The run folder rule and the dataset identity a run records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlaworks.train.run_folder import (
    DATASET_FILE,
    RunFolderError,
    check_paths,
    check_run_folder,
    dataset_identity,
    start_run_folder,
)


def prepare_run_folder(out: Path, data: Path, *, fresh: bool, resuming: bool) -> None:
    """What train_policy does with a run folder: check it, then (after the build) start it."""
    identity = check_run_folder(out, data, fresh=fresh, resuming=resuming)
    start_run_folder(out, identity, fresh=fresh)


def _dataset(root: Path, stats: dict) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps({"codebase_version": "v3.0", "total_frames": 4}))
    (root / "meta/stats.json").write_text(json.dumps(stats))
    return root


def test_identity_follows_metadata_not_location(tmp_path):
    a = _dataset(tmp_path / "a", {"action": {"mean": [0.0]}})
    b = _dataset(tmp_path / "b", {"action": {"mean": [0.0]}})
    c = _dataset(tmp_path / "c", {"action": {"mean": [0.5]}})
    assert dataset_identity(a)["fingerprint"] == dataset_identity(b)["fingerprint"]
    assert dataset_identity(a)["fingerprint"] != dataset_identity(c)["fingerprint"]
    assert dataset_identity(a)["path"] == str(a.resolve())


def test_resuming_on_another_dataset_names_both(tmp_path):
    a = _dataset(tmp_path / "a", {"action": {"mean": [0.0]}})
    moved = _dataset(tmp_path / "moved", {"action": {"mean": [0.0]}})
    other = _dataset(tmp_path / "other", {"action": {"mean": [0.5]}})
    run = tmp_path / "run"
    prepare_run_folder(run, a, fresh=False, resuming=False)
    prepare_run_folder(run, moved, fresh=False, resuming=True)  # same data, other place: fine
    with pytest.raises(RunFolderError, match=r"trained on .*moved \(fingerprint .*\) but --data is .*other"):
        prepare_run_folder(run, other, fresh=False, resuming=True)
    prepare_run_folder(run, other, fresh=True, resuming=False)
    assert json.loads((run / DATASET_FILE).read_text())["path"] == str(other.resolve())


def test_foreign_folders_are_refused_and_fresh_keeps_what_runs_do_not_write(tmp_path):
    data = _dataset(tmp_path / "data", {})
    foreign = tmp_path / "thesis"
    (foreign / "important").mkdir(parents=True)
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(RunFolderError, match=r"not a run folder \(it holds important/, thesis.tex\)"):
        prepare_run_folder(foreign, data, fresh=True, resuming=False)
    run = tmp_path / "run"
    (run / "checkpoints/step-000002").mkdir(parents=True)
    (run / "metrics.csv").write_text("step\n1\n")
    (run / "vlm").mkdir()  # e.g. an exported backbone: not the run's own file
    prepare_run_folder(run, data, fresh=True, resuming=False)
    assert sorted(p.name for p in run.iterdir()) == [DATASET_FILE, "vlm"]
    with pytest.raises(RunFolderError, match="is the dataset folder"):
        check_paths(data, data)
    with pytest.raises(RunFolderError, match="inside the dataset folder"):
        check_paths(data, data / "runs" / "x")
    check_paths(data, tmp_path / "runs" / "x")
