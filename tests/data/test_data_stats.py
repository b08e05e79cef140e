"""Statistics in the v3 stats.json format."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.data.stats import STAT_NAMES, compute_stats, read_stats, write_stats


def test_compute_stats_per_dimension(tmp_path):
    x = np.stack([np.arange(101.0), -np.arange(101.0)], axis=1)
    stats = compute_stats(x)
    assert set(stats) == set(STAT_NAMES)
    assert stats["min"] == [0.0, -100.0] and stats["max"] == [100.0, 0.0]
    assert stats["q01"] == pytest.approx([1.0, -99.0]) and stats["q99"] == pytest.approx([99.0, -1.0])
    assert stats["mean"] == [50.0, -50.0] and stats["count"] == [101]
    write_stats({"action": stats}, tmp_path / "stats.json")
    assert read_stats(tmp_path / "stats.json") == {"action": stats}
    assert read_stats(tmp_path / "absent.json") == {}


def test_bad_input_and_file(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        compute_stats(np.zeros((0, 3)))
    (tmp_path / "stats.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_stats(tmp_path / "stats.json")
