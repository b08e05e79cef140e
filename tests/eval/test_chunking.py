import numpy as np
import pytest

from vlaworks.eval.chunking import (
    ENSEMBLE_DECAY,
    TemporalEnsembler,
    actions_per_chunk,
    ensemble_decay,
    validate_chunk_exec,
)


@pytest.mark.parametrize(
    ("mode", "length", "expected"),
    [("full", 8, 8), ("half", 8, 4), ("half", 5, 3), ("1", 8, 1), ("3", 8, 3), ("16", 8, 8), ("half", 1, 1)],
)
def test_actions_per_chunk(mode, length, expected):
    assert actions_per_chunk(mode, length) == expected


def test_bad_modes_are_rejected_with_the_valid_ones_named():
    assert validate_chunk_exec(" Full ") == "full"
    for bad in ("quarter", "0", "-1", ""):
        with pytest.raises(ValueError, match="'full', 'half'"):
            validate_chunk_exec(bad)
    with pytest.raises(ValueError, match="at least one action"):
        actions_per_chunk("full", 0)


def test_ensemble_mode_runs_one_action_per_prediction():
    assert validate_chunk_exec("Ensemble") == "ensemble"
    assert actions_per_chunk("ensemble", 8) == 1
    assert ensemble_decay("ensemble") == ENSEMBLE_DECAY and ensemble_decay("ensemble:0.5") == 0.5
    for bad in ("ensemble:-1", "ensemble:x"):
        with pytest.raises(ValueError, match="decay"):
            validate_chunk_exec(bad)


def test_temporal_ensemble_on_a_hand_computed_example():
    """Chunks of 3 predicted at steps 0, 1, 2, 3: the action at step t averages every chunk
    covering t, weight exp(-m * i) for the i-th oldest (ACT)."""
    m = 0.5
    ens = TemporalEnsembler(n_envs=1, decay=m)
    chunks = [np.full((3, 2), 10.0 * (k + 1)) + np.arange(3)[:, None] for k in range(4)]
    # step 0: only chunk 0 -> its action 0
    np.testing.assert_allclose(ens.action(0, 0, chunks[0]), [10.0, 10.0])
    # step 1: chunk 0 (index 1: 11) weight 1, chunk 1 (index 0: 20) weight e^-0.5
    w = np.exp(-m)
    np.testing.assert_allclose(ens.action(0, 1, chunks[1]), [(11 + 20 * w) / (1 + w)] * 2, rtol=1e-6)
    # step 2: chunks 0 (12), 1 (21), 2 (30)
    ws = np.exp(-m * np.arange(3))
    expected = (ws * np.array([12.0, 21.0, 30.0])).sum() / ws.sum()
    np.testing.assert_allclose(ens.action(0, 2, chunks[2]), [expected] * 2, rtol=1e-6)
    # step 3: chunk 0 has expired (covers steps 0-2); chunks 1 (22), 2 (31), 3 (40)
    expected = (ws * np.array([22.0, 31.0, 40.0])).sum() / ws.sum()
    np.testing.assert_allclose(ens.action(0, 3, chunks[3]), [expected] * 2, rtol=1e-6)


def test_ensembles_are_kept_per_env():
    ens = TemporalEnsembler(n_envs=2, decay=0.0)
    ens.action(0, 0, np.ones((2, 1)))
    np.testing.assert_allclose(ens.action(1, 0, np.full((2, 1), 5.0)), [5.0])
    np.testing.assert_allclose(ens.action(0, 1, np.full((2, 1), 3.0)), [2.0])
