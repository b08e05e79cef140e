"""Deterministic, resumable batch planning over one or several datasets.

Why not ``DataLoader(shuffle=True)``: its order lives in iterator state that cannot be
saved, so a resumed run would see different data than an uninterrupted one. Here the
data order is a pure function of ``(seed, source, epoch)`` and the whole sampler state
is a handful of integers (how many batches were drawn, how many samples each source
has served), saved in every checkpoint.

Planning is separate from loading. :class:`MixedBatchSource` only *plans* batches
(which source, which dataset indices, which per-sample seed); :func:`batch_stream`
loads the planned batches, optionally in DataLoader worker processes that run ahead.
The trainer keeps its own copy of the source and advances it once per *consumed*
batch, so prefetched-but-unused batches never leak into the saved state.

Each source is read as an endless stream: global position ``q`` maps to epoch
``q // len(dataset)`` and to item ``perm(seed, source, epoch)[q % len(dataset)]``.
With ``world_size`` processes every draw takes ``batch_size * world_size`` consecutive
positions and rank ``r`` keeps its slice, so all ranks see disjoint samples from the
same source, and a run may resume on a different number of processes.

Every sample is loaded under a per-sample seed (python ``random``, numpy and torch
CPU generators), so random augmentations inside a dataset are reproducible no matter
the number of workers or where the run was resumed.

Co-training (seed 004, III-C): ``MixedBatchSource({"robot": (robot_ds, collate),
"vl": (vl_ds, collate)}, {"robot": 0.5, "vl": 0.5}, batch_size=16)`` yields whole
batches from one source at a time, source ``k`` chosen with probability ``w_k``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vlaworks.batch import Batch

Collate = Callable[[list[Any]], Batch]
SampleKey = tuple[str, int, int]
"""(source name, dataset index, per-sample seed)."""

_CHOICE_SALT = 0x5EED
_PERM_SALT = 0x9E3


class MixedBatchSource:
    """Plans whole batches from one of several datasets, chosen by weight.

    ``sources`` maps a name to ``(dataset, collate)``; ``weights`` maps the same names
    to non-negative probabilities (normalised; default: equal). ``batch_size`` is per
    process. A single source with weight 1 is the plain shuffled sampler the trainer
    uses for one dataset.

    Iterating the object loads batches in this process (``for name, batch in source``);
    the trainer instead uses :func:`batch_stream` for worker prefetching.
    """

    def __init__(
        self,
        sources: Mapping[str, tuple[Dataset, Collate]],
        weights: Mapping[str, float] | None = None,
        batch_size: int = 8,
        *,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise ValueError("MixedBatchSource needs at least one source: {'name': (dataset, collate)}.")
        if batch_size < 1:
            raise ValueError(f"MixedBatchSource batch_size must be >= 1; got {batch_size}.")
        self.names: tuple[str, ...] = tuple(sources)
        self.datasets: dict[str, Dataset] = {k: v[0] for k, v in sources.items()}
        self.collates: dict[str, Collate] = {k: v[1] for k, v in sources.items()}
        for name, ds in self.datasets.items():
            if len(ds) == 0:  # type: ignore[arg-type]
                raise ValueError(f"Source {name!r} has an empty dataset; remove it or fill it.")
        if weights is None:
            weights = {k: 1.0 for k in self.names}
        if set(weights) != set(self.names):
            raise ValueError(
                f"weights keys {sorted(weights)} must match sources keys {sorted(self.names)}."
            )
        w = np.array([float(weights[k]) for k in self.names])
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all zero; got {dict(weights)}.")
        self.weights: dict[str, float] = {k: float(x) for k, x in zip(self.names, w / w.sum(), strict=True)}
        self._cum = np.cumsum(w / w.sum())
        self.batch_size = batch_size
        self.seed = seed
        self.rank = 0
        self.world_size = 1
        self.draws = 0
        self.positions: dict[str, int] = {k: 0 for k in self.names}
        self._perm_cache: dict[tuple[str, int], np.ndarray] = {}

    def shard(self, rank: int, world_size: int) -> None:
        """Make this process read rank ``rank``'s slice of every global batch."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size); got rank={rank}, world_size={world_size}.")
        self.rank, self.world_size = rank, world_size

    def choose(self, draw: int) -> str:
        """Source name of global draw ``draw``: a pure function of ``(seed, draw)``."""
        if len(self.names) == 1:
            return self.names[0]
        u = np.random.default_rng([self.seed, _CHOICE_SALT, draw]).random()
        return self.names[min(int(np.searchsorted(self._cum, u, side="right")), len(self.names) - 1)]

    def epoch(self, name: str) -> int:
        """How many full passes over source ``name`` have started (0-based)."""
        return self.positions[name] // len(self.datasets[name])  # type: ignore[arg-type]

    def next_plan(self) -> tuple[str, list[SampleKey]]:
        """Plan this rank's next batch and advance the state."""
        name = self.choose(self.draws)
        start = self.positions[name] + self.rank * self.batch_size
        keys = [self._key(name, q) for q in range(start, start + self.batch_size)]
        self.draws += 1
        self.positions[name] += self.batch_size * self.world_size
        return name, keys

    def load(self, name: str, keys: Sequence[SampleKey]) -> Batch:
        """Load and collate planned samples in this process."""
        return self.collates[name]([load_sample(self.datasets[name], k) for k in keys])

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: draws, per-source positions, and the settings they depend on."""
        return {"draws": self.draws, "positions": dict(self.positions), "seed": self.seed,
                "batch_size": self.batch_size, "weights": dict(self.weights)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; refuses a state from different sources or seed."""
        if set(state["positions"]) != set(self.names):
            raise ValueError(
                f"Sampler state has sources {sorted(state['positions'])} but this run has "
                f"{sorted(self.names)}; resume with the same data sources."
            )
        if int(state["seed"]) != self.seed:
            raise ValueError(
                f"The checkpoint was trained with seed {state['seed']} but this run uses {self.seed}; resume "
                f"with --seed {state['seed']}, or pass --fresh to start again."
            )
        self.draws = int(state["draws"])
        self.positions = {k: int(v) for k, v in state["positions"].items()}

    def copy(self) -> MixedBatchSource:
        """An independent planner at the same state (datasets are shared, not copied)."""
        other = copy.copy(self)
        other.positions = dict(self.positions)
        other._perm_cache = {}
        return other

    def __iter__(self) -> Iterator[tuple[str, Batch]]:
        while True:
            name, keys = self.next_plan()
            yield name, self.load(name, keys)

    def _key(self, name: str, q: int) -> SampleKey:
        n = len(self.datasets[name])  # type: ignore[arg-type]
        src = self.names.index(name)
        epoch, offset = divmod(q, n)
        perm = self._perm_cache.get((name, epoch))
        if perm is None:
            perm = np.random.default_rng([self.seed, _PERM_SALT, src, epoch]).permutation(n)
            self._perm_cache = {k: v for k, v in self._perm_cache.items() if k[0] != name}
            self._perm_cache[(name, epoch)] = perm
        sample_seed = int(np.random.SeedSequence([self.seed, src, q]).generate_state(1)[0])
        return name, int(perm[offset]), sample_seed


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with python/numpy/torch-CPU generators seeded, restoring them after.

    Only the CPU generator is seeded (``torch.default_generator``): ``torch.manual_seed`` would
    also re-seed every GPU's generator, which this block does not restore, and costs ~50 % of
    this function's time (it runs once per training sample)."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


def load_sample(dataset: Dataset, key: SampleKey) -> Any:
    """``dataset[index]`` under the key's per-sample seed."""
    _, index, sample_seed = key
    with seeded(sample_seed):
        return dataset[index]


class _PlannedDataset(Dataset):
    """Map-style view whose indices are :data:`SampleKey` tuples (for DataLoader workers)."""

    def __init__(self, datasets: Mapping[str, Dataset]) -> None:
        self.datasets = dict(datasets)

    def __getitem__(self, key: SampleKey) -> tuple[str, Any]:
        return key[0], load_sample(self.datasets[key[0]], key)


class _RoutedCollate:
    """Collates a planned batch with its own source's collate function."""

    def __init__(self, collates: Mapping[str, Collate]) -> None:
        self.collates = dict(collates)

    def __call__(self, items: list[tuple[str, Any]]) -> tuple[str, Batch]:
        name = items[0][0]
        return name, self.collates[name]([sample for _, sample in items])


class _PlanIterable:
    """Endless iterable of planned key lists, drawn from a private copy of the source."""

    def __init__(self, source: MixedBatchSource) -> None:
        self.source = source.copy()

    def __iter__(self) -> Iterator[list[SampleKey]]:
        while True:
            yield self.source.next_plan()[1]


def batch_stream(
    source: MixedBatchSource, *, num_workers: int = 0, prefetch_factor: int = 2
) -> Iterator[tuple[str, Batch]]:
    """Endless ``(source name, Batch)`` stream starting at ``source``'s current state.

    ``source`` itself is not advanced. With ``num_workers > 0`` batches are loaded in
    worker processes (DataLoader), in plan order. The loader owns a private generator,
    so creating it does not touch the global torch RNG (which would break exact resume).
    """
    loader = DataLoader(
        _PlannedDataset(source.datasets),
        batch_sampler=_PlanIterable(source),
        collate_fn=_RoutedCollate(source.collates),
        num_workers=num_workers,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(source.seed),
    )
    return iter(loader)
