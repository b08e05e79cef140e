from __future__ import annotations

import itertools

import pytest
import torch

from vlaworks.train.sampler import MixedBatchSource, batch_stream
from vlaworks.train.smoke import collate_vl, collate_windows


def _mixed(windows, vl_data, weights=None, seed=0, batch_size=4) -> MixedBatchSource:
    return MixedBatchSource(
        {"robot": (windows, collate_windows), "vl": (vl_data, collate_vl)}, weights, batch_size, seed=seed
    )


def _names(source: MixedBatchSource, n: int) -> list[str]:
    return [source.next_plan()[0] for _ in range(n)]


def test_default_mix_is_half_and_half(windows, vl_data):
    names = _names(_mixed(windows, vl_data), 4000)
    assert names.count("robot") / len(names) == pytest.approx(0.5, abs=0.03)
    assert names[:20].count("robot") not in (0, 20)  # interleaved, not blocks


def test_weighted_mix_ratio(windows, vl_data):
    names = _names(_mixed(windows, vl_data, {"robot": 3.0, "vl": 1.0}), 4000)
    assert names.count("robot") / len(names) == pytest.approx(0.75, abs=0.03)


def test_plans_are_deterministic_in_seed(windows, vl_data):
    a = [_mixed(windows, vl_data, seed=3).next_plan() for _ in range(1)]
    s1, s2, s3 = (_mixed(windows, vl_data, seed=s) for s in (3, 3, 4))
    p1 = [s1.next_plan() for _ in range(30)]
    assert p1[0] == a[0]
    assert p1 == [s2.next_plan() for _ in range(30)]
    assert p1 != [s3.next_plan() for _ in range(30)]


def test_state_dict_resumes_the_same_plan(windows, vl_data):
    source = _mixed(windows, vl_data)
    _names(source, 17)
    state = source.state_dict()
    expected = [source.next_plan() for _ in range(20)]
    fresh = _mixed(windows, vl_data)
    fresh.load_state_dict(state)
    assert [fresh.next_plan() for _ in range(20)] == expected
    with pytest.raises(ValueError, match="seed"):
        _mixed(windows, vl_data, seed=9).load_state_dict(state)


def test_every_epoch_is_a_permutation_and_epochs_differ(windows):
    source = MixedBatchSource({"w": (windows, collate_windows)}, batch_size=4, seed=1)
    n = len(windows)
    indices = [k[1] for _ in range(2 * n // 4) for k in source.next_plan()[1]]
    first, second = indices[:n], indices[n:]
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first != second
    assert source.epoch("w") == 2


def test_ranks_get_disjoint_slices_of_the_global_batch(windows):
    single = MixedBatchSource({"w": (windows, collate_windows)}, batch_size=8, seed=2)
    ranks = [MixedBatchSource({"w": (windows, collate_windows)}, batch_size=4, seed=2) for _ in range(2)]
    for r, s in enumerate(ranks):
        s.shard(r, 2)
    for _ in range(5):
        whole = [k[1] for k in single.next_plan()[1]]
        parts = [[k[1] for k in s.next_plan()[1]] for s in ranks]
        assert parts[0] + parts[1] == whole
    with pytest.raises(ValueError, match="rank"):
        ranks[0].shard(2, 2)


def test_worker_loading_matches_in_process_loading(windows, vl_data):
    source = _mixed(windows, vl_data)
    in_process = list(itertools.islice(iter(source.copy()), 6))
    with_workers = list(itertools.islice(batch_stream(source, num_workers=2), 6))
    assert source.draws == 0  # batch_stream does not advance the caller's planner
    for (na, a), (nb, b) in zip(in_process, with_workers, strict=True):
        assert na == nb
        assert torch.equal(a.images, b.images)
        if na == "robot":  # per-sample seeding makes the random "augmentation" reproducible
            assert torch.equal(a.actions, b.actions)
        else:
            assert a.vl_answer == b.vl_answer


def test_bad_sources_or_weights_are_rejected(windows, vl_data):
    with pytest.raises(ValueError, match="weights keys"):
        _mixed(windows, vl_data, {"robot": 1.0})
    with pytest.raises(ValueError, match="not all zero"):
        _mixed(windows, vl_data, {"robot": 0.0, "vl": 0.0})
    with pytest.raises(ValueError, match="at least one source"):
        MixedBatchSource({}, batch_size=2)


def test_seeded_block_draws_from_its_seed_and_leaves_the_callers_generators_alone():
    import random

    import numpy as np

    from vlaworks.train.sampler import seeded

    def draws() -> tuple:
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    expected_after = draws()
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    with seeded(7):
        inside = draws()
    with seeded(7):
        assert draws() == inside  # the block's draws are a function of its seed
    assert draws() == expected_after  # as if the blocks had not run
    torch.manual_seed(7)
    assert float(torch.rand(())) == inside[2]  # the CPU stream is torch.manual_seed's
