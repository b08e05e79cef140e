"""Batching concurrent requests into one ``predict_chunk`` call, off the event loop.

Requests from all connections go into one asyncio queue. The batcher takes the first
waiting request plus every other one already queued (up to ``max_batch``); when more
connections are open than it has requests, it waits ``wait_s`` (a few ms) once for
stragglers. The batch runs in a single worker thread, so the event loop keeps reading
and answering frames while the model works, and requests arriving meanwhile form the
next batch. This pays because a model call costs far less per row in a batch than
alone (BENCHMARKS.md, "Policy server"); ``max_batch=1`` turns batching off.

A batch that raises is re-run one request at a time, so one bad request fails alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Predict = Callable[[list[dict[str, Any]]], np.ndarray]


@dataclass
class _Request:
    observation: dict[str, Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Result:
    """One request's action chunk and how it was computed."""

    actions: np.ndarray
    queue_ms: float
    infer_ms: float
    batch_size: int


class RequestBatcher:
    """Gathers requests into batches for ``predict`` (module doc); run :meth:`run` as a task."""

    def __init__(
        self,
        predict: Predict,
        *,
        max_batch: int = 8,
        wait_s: float = 0.002,
        peers: Callable[[], int] = lambda: 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 (1 turns batching off); got {max_batch}.")
        if wait_s < 0:
            raise ValueError(f"The batching wait must be >= 0 seconds; got {wait_s}.")
        self.predict = predict
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.peers = peers
        self.batches = 0
        self.requests = 0
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")

    async def submit(self, observation: dict[str, Any]) -> Result:
        """Queue one checked observation and wait for its chunk ``[chunk, action_dim]``."""
        request = _Request(observation, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def run(self) -> None:
        """Serve batches until cancelled."""
        while True:
            batch = [await self._queue.get()]
            self._drain(batch)
            if len(batch) < self.max_batch and self.wait_s > 0 and self.peers() > len(batch):
                await asyncio.sleep(self.wait_s)
                self._drain(batch)
            live = [r for r in batch if not r.future.done()]  # a client that left cancels its future
            if live:
                await self._run_batch(live)

    def close(self) -> None:
        """Wait for the model call in progress, then stop the worker thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _drain(self, batch: list[_Request]) -> None:
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _run_batch(self, batch: Sequence[_Request]) -> None:
        start = time.perf_counter()
        try:
            actions = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._predict, [r.observation for r in batch]
            )
        except Exception as err:
            if len(batch) > 1:
                for request in batch:
                    await self._run_batch([request])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(err)
            return
        infer_ms = 1000 * (time.perf_counter() - start)
        self.batches += 1
        self.requests += len(batch)
        for request, chunk in zip(batch, actions, strict=True):
            if not request.future.done():
                queue_ms = 1000 * (start - request.queued)
                request.future.set_result(Result(chunk, queue_ms, infer_ms, len(batch)))

    def _predict(self, observations: list[dict[str, Any]]) -> np.ndarray:
        actions = np.asarray(self.predict(observations), dtype=np.float32)
        if actions.ndim != 3 or len(actions) != len(observations):
            raise ValueError(
                f"The policy returned actions of shape {list(actions.shape)} for {len(observations)} "
                "observations; predict_chunk must return [B, chunk, action_dim]."
            )
        return actions
