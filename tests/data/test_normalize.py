"""Normalizer: round trips per mode, q99 clipping, gripper skip, torch/numpy parity, checkpoints, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vlaworks.data.normalize import Normalizer
from vlaworks.data.stats import compute_stats


@pytest.fixture
def stats() -> dict:
    rng = np.random.default_rng(0)
    action = rng.normal(size=(500, 7)) * [1, 2, 3, 0.1, 0.1, 0.1, 0] + [0, 1, 0, 0, 0, 0, 0]
    action[:, 6] = np.where(rng.random(500) > 0.5, 1.0, -1.0)
    state = rng.uniform(-5, 5, size=(500, 8))
    state[:, 7] = 0.04  # a constant dimension
    return {
        "action": compute_stats(action),
        "observation.state": compute_stats(state),
        "other": compute_stats(state),
    }


@pytest.mark.parametrize("mode", ["q99", "meanstd", "minmax"])
def test_round_trip_inside_range(stats, mode):
    norm = Normalizer(stats, mode=mode)
    lo, hi = np.asarray(stats["action"]["q01"]), np.asarray(stats["action"]["q99"])
    x = (lo + (hi - lo) * np.linspace(0.1, 0.9, 7)).astype(np.float32)
    x[6] = -1.0
    y = norm.normalize("action", x)
    assert y.dtype == np.float32 and y.shape == (7,)
    np.testing.assert_allclose(norm.unnormalize("action", y), x, atol=1e-5)


def test_q99_maps_quantiles_to_unit_range_and_clips(stats):
    norm = Normalizer(stats)
    q01, q99 = np.asarray(stats["action"]["q01"]), np.asarray(stats["action"]["q99"])
    np.testing.assert_allclose(norm.normalize("action", q01)[:6], -1.0, atol=1e-9)
    np.testing.assert_allclose(norm.normalize("action", q99)[:6], 1.0, atol=1e-9)
    far = q99 + 100.0
    assert norm.normalize("action", far)[:6].max() == 1.0


def test_gripper_left_as_is_by_default_and_configurable(stats):
    x = np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32)
    assert Normalizer(stats).skip_dims == {"action": (6,)}
    assert Normalizer(stats).normalize("action", x)[6] == 1.0
    off = Normalizer(stats, skip_dims={})
    assert off.skip_dims == {}
    assert off.normalize("action", x * 0.5)[6] == pytest.approx(0.5)
    widened = {**stats, "action": {**stats["action"], "max": [*stats["action"]["max"][:6], 255.0]}}
    assert Normalizer(widened).skip_dims == {}


def test_constant_dimension_is_finite(stats):
    norm = Normalizer(stats)
    y = norm.normalize("observation.state", np.full(8, 0.04, np.float32))
    assert np.isfinite(y).all() and abs(y[7]) < 1e-6
    assert norm.unnormalize("observation.state", y)[7] == pytest.approx(0.04)


def test_torch_matches_numpy_and_keeps_dtype(stats):
    norm = Normalizer(stats)
    x = np.random.default_rng(1).normal(size=(4, 3, 7)).astype(np.float32)
    y_np = norm.normalize("action", x)
    y_t = norm.normalize("action", torch.from_numpy(x))
    assert isinstance(y_t, torch.Tensor) and y_t.dtype == torch.float32
    np.testing.assert_allclose(y_t.numpy(), y_np, atol=1e-6)
    back = norm.unnormalize("action", y_t).numpy()
    np.testing.assert_allclose(back, norm.unnormalize("action", y_np), atol=1e-5)


def test_state_dict_round_trip_through_json(stats):
    norm = Normalizer(stats, mode="meanstd", skip_dims={"action": [5, 6]})
    state = json.loads(json.dumps(norm.state_dict()))
    assert set(state["stats"]) == {"action", "observation.state"}
    again = Normalizer.from_state_dict(state)
    x = np.random.default_rng(2).normal(size=7).astype(np.float32)
    np.testing.assert_array_equal(again.normalize("action", x), norm.normalize("action", x))
    assert again.skip_dims == {"action": (5, 6)} and again.mode == "meanstd"


def test_check_compatible_names_missing_and_mismatched(stats):
    norm = Normalizer(stats)
    norm.check_compatible(stats)
    norm.check_compatible(Normalizer(stats))
    bad = {"action": {"mean": [0.0] * 6}}
    expected = r"'action' has 6 dimensions, expected 7; missing key 'observation.state'"
    with pytest.raises(ValueError, match=expected):
        norm.check_compatible(bad)


def test_clear_errors(stats):
    with pytest.raises(KeyError, match=r"statistics for \['proprio'\]"):
        Normalizer(stats, keys=("proprio",))
    no_quantiles = {"action": {"mean": [0.0] * 7, "std": [1.0] * 7}}
    with pytest.raises(KeyError, match=r"lack \['q01', 'q99'\].*compute_stats"):
        Normalizer(no_quantiles, keys=("action",))
    with pytest.raises(ValueError, match="unknown"):
        Normalizer(stats, mode="zscore")
    with pytest.raises(ValueError, match="7 dimensions .* last axis has 6"):
        Normalizer(stats).normalize("action", np.zeros(6))
    with pytest.raises(KeyError, match="no statistics for 'other'"):
        Normalizer(stats).normalize("other", np.zeros(8))
