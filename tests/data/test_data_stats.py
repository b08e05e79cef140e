"""Statistics in the v3 stats.json format."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.data.stats import STAT_NAMES, ImageStats, compute_stats, read_stats, write_stats


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


def test_image_stats_per_channel_from_histograms():
    frames = np.zeros((2, 10, 10, 3), dtype=np.uint8)
    frames[..., 0] = np.arange(100, dtype=np.uint8).reshape(10, 10)  # red: 0..99, each twice
    frames[..., 1] = 255
    acc = ImageStats(3)
    acc.add(frames[:1])
    acc.add(frames[1:])
    stats = acc.stats()
    assert set(stats) == set(STAT_NAMES) and stats["count"] == [2]
    assert np.shape(stats["mean"]) == (3, 1, 1)
    red = np.arange(100) / 255.0
    assert stats["mean"][0][0][0] == pytest.approx(red.mean())
    assert stats["std"][0][0][0] == pytest.approx(red.std())
    assert stats["min"][0][0][0] == 0.0 and stats["max"][0][0][0] == pytest.approx(99 / 255)
    assert stats["q01"][0][0][0] == 0.0 and stats["q99"][0][0][0] == pytest.approx(98 / 255)
    assert [stats[k][1][0][0] for k in ("min", "max", "mean", "std")] == [1.0, 1.0, pytest.approx(1.0), 0.0]
    with pytest.raises(ValueError, match="uint8 frames"):
        acc.add(frames.astype(np.float32))
    with pytest.raises(ValueError, match="no frames"):
        ImageStats(3).stats()
