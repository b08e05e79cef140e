"""The request batcher: concurrent requests share a model call; a bad request fails alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from vlaworks.serve.batching import RequestBatcher


class CountingPolicy:
    """Chunk of the request's ``value``; refuses ``value < 0``; records batch sizes."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_chunk(self, observations: list[dict]) -> np.ndarray:
        self.calls.append(len(observations))
        if any(obs["value"] < 0 for obs in observations):
            raise ValueError("negative value")
        return np.array([np.full((2, 3), obs["value"]) for obs in observations], dtype=np.float32)


async def _serve(policy: CountingPolicy, values: list[int], **options) -> list:
    batcher = RequestBatcher(policy.predict_chunk, **options)
    task = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.submit({"value": v}) for v in values), return_exceptions=True)
    finally:
        task.cancel()
        batcher.close()


def test_concurrent_requests_share_one_call_up_to_max_batch() -> None:
    policy = CountingPolicy()
    results = asyncio.run(_serve(policy, list(range(5)), max_batch=4, wait_s=0.01, peers=lambda: 5))
    assert policy.calls == [4, 1]
    assert [float(r.actions[0, 0]) for r in results] == [0, 1, 2, 3, 4]
    assert [r.batch_size for r in results] == [4, 4, 4, 4, 1]
    assert all(r.actions.shape == (2, 3) and r.infer_ms > 0 for r in results)


def test_max_batch_one_turns_batching_off() -> None:
    policy = CountingPolicy()
    asyncio.run(_serve(policy, [1, 2, 3], max_batch=1))
    assert policy.calls == [1, 1, 1]


def test_a_failing_request_fails_alone() -> None:
    policy = CountingPolicy()
    results = asyncio.run(_serve(policy, [1, -1, 2], max_batch=8))
    assert policy.calls == [3, 1, 1, 1]  # the batch, then each request on its own
    assert isinstance(results[1], ValueError)
    assert [float(results[i].actions[0, 0]) for i in (0, 2)] == [1, 2]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        RequestBatcher(CountingPolicy().predict_chunk, max_batch=0)
