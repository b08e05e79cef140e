from __future__ import annotations

import csv

import pytest

from vlaworks.train.metrics import MetricsCsv


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_header_grows_when_new_metrics_appear(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsCsv(path)
    log.log({"step": 1, "loss": 0.5, "lr": 0.1, "samples_per_s": 10.0, "l1": 0.5})
    log.log({"step": 2, "loss": 0.4, "lr": 0.1, "samples_per_s": 11.0, "vl_loss": 1.5})
    rows = _rows(path)
    assert list(rows[0]) == ["step", "loss", "lr", "samples_per_s", "l1", "vl_loss"]
    assert rows[0]["vl_loss"] == "" and rows[1]["vl_loss"] == "1.5" and rows[1]["l1"] == ""


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsCsv(path)
    for step in range(1, 6):
        log.log({"step": step, "loss": float(step), "lr": 0.0, "samples_per_s": 1.0, "l1": 0.1})
    resumed = MetricsCsv(path, keep_until_step=3)
    assert [r["step"] for r in _rows(path)] == ["1", "2", "3"]
    assert "l1" in resumed.columns
    MetricsCsv(path)  # a fresh run starts an empty file
    assert _rows(path) == []
    with pytest.raises(ValueError, match="step"):
        resumed.log({"loss": 1.0})


def test_resume_drops_a_line_torn_by_a_kill(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsCsv(path)
    for step in (1, 2):
        log.log({"step": step, "loss": 0.5, "lr": 0.1, "samples_per_s": 1.0})
    with path.open("a") as f:
        f.write("3,0.4")  # the process died inside the write of step 3's row
    MetricsCsv(path, keep_until_step=5)
    assert [r["step"] for r in _rows(path)] == ["1", "2"]
