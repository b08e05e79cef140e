"""Action / state normalisation that travels with the model checkpoint.

Modes (per dimension):

* ``"q99"`` (default, OpenVLA / pi0 style): ``q01..q99`` maps to ``[-1, 1]``, clipped.
* ``"meanstd"``: ``(x - mean) / std``, not clipped.
* ``"minmax"``: ``min..max`` maps to ``[-1, 1]``, clipped.

Dimensions listed in ``skip_dims`` pass through unchanged. By default the gripper
(action dimension 6) is skipped when its statistics already lie in ``[-1, 1]``, so an
open/close command stays exactly -1 / +1. Dimensions with a zero range (constant in
the data) are only centred (scale 1), so they normalise to ~0 and back to the constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, TypeVar

import numpy as np
import torch

from vlaworks.envs.base import GRIPPER_INDEX

Mode = Literal["q99", "meanstd", "minmax"]
MODES: tuple[str, ...] = ("q99", "meanstd", "minmax")
_BOUNDS = {"q99": ("q01", "q99"), "minmax": ("min", "max"), "meanstd": ("mean", "std")}
EPS = 1e-8

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class Normalizer:
    """Maps raw features to and from the normalised space the policy sees.

    ``stats`` is ``meta/stats.json``-shaped: ``{key: {"q01": [...], "q99": [...], ...}}``.
    ``skip_dims`` maps a key to dimensions left as is; ``None`` picks the gripper rule
    described in the module docstring.
    """

    def __init__(
        self,
        stats: Mapping[str, Mapping[str, Sequence]],
        mode: Mode = "q99",
        keys: Sequence[str] = ("action", "observation.state"),
        skip_dims: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Normalizer mode {mode!r} is unknown; choose one of {MODES}.")
        self.mode: Mode = mode
        self.keys = tuple(keys)
        lo_name, hi_name = _BOUNDS[mode]
        missing_keys = [k for k in self.keys if k not in stats]
        if missing_keys:
            raise KeyError(
                f"Normalizer needs statistics for {missing_keys}, but the stats only cover {sorted(stats)}."
            )
        self.stats: dict[str, dict[str, list]] = {}
        self._lo: dict[str, np.ndarray] = {}
        self._hi: dict[str, np.ndarray] = {}
        for key in self.keys:
            entry = stats[key]
            absent = [s for s in (lo_name, hi_name) if s not in entry]
            if absent:
                raise KeyError(
                    f"Statistics for {key!r} lack {absent} needed by mode {mode!r} "
                    f"(present: {sorted(entry)}); add them with `vlaworks check DATASET --recompute-stats` "
                    "(in Python: LeRobotDataset.compute_stats()) or pick another mode."
                )
            self.stats[key] = {
                name: np.asarray(value, dtype=np.float64).tolist() for name, value in entry.items()
            }
            self._lo[key] = np.asarray(entry[lo_name], dtype=np.float64).reshape(-1)
            self._hi[key] = np.asarray(entry[hi_name], dtype=np.float64).reshape(-1)
            for name, bound in ((lo_name, self._lo[key]), (hi_name, self._hi[key])):
                if not np.isfinite(bound).all():
                    raise ValueError(
                        f"Statistics for {key!r}: {name} is NaN or inf at dims "
                        f"{np.flatnonzero(~np.isfinite(bound)).tolist()}; recompute the dataset's "
                        "meta/stats.json (vlaworks check DATA --recompute-stats)."
                    )
        chosen = self._default_skip() if skip_dims is None else skip_dims
        self.skip_dims = {k: tuple(int(d) for d in v) for k, v in chosen.items()}
        unknown = [k for k in self.skip_dims if k not in self.keys]
        if unknown:
            raise KeyError(
                f"skip_dims names keys {unknown} that are not normalised (keys: {list(self.keys)})."
            )
        self._cache: dict[tuple[str, str, torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}

    def _default_skip(self) -> dict[str, tuple[int, ...]]:
        """Skip the gripper dimension of ``action`` when its min/max already lie in [-1, 1]."""
        action = self.stats.get("action")
        if action is None or "min" not in action or "max" not in action:
            return {}
        lo, hi = np.asarray(action["min"]).reshape(-1), np.asarray(action["max"]).reshape(-1)
        if len(lo) > GRIPPER_INDEX and lo[GRIPPER_INDEX] >= -1.0 and hi[GRIPPER_INDEX] <= 1.0:
            return {"action": (GRIPPER_INDEX,)}
        return {}

    def dim(self, key: str) -> int:
        """Number of dimensions of feature ``key``."""
        return len(self._lo[self._known(key)])

    def _known(self, key: str) -> str:
        if key not in self._lo:
            raise KeyError(f"Normalizer has no statistics for {key!r}; it normalises {list(self.keys)}.")
        return key

    def _params(self, key: str, like: ArrayT) -> tuple[ArrayT, ArrayT, ArrayT]:
        """(offset, scale, keep-mask) with ``normalised = (x - offset) / scale`` where the mask is False."""
        lo, hi = self._lo[key], self._hi[key]
        if self.mode == "meanstd":
            offset, scale = lo, hi.copy()
        else:
            offset, scale = (lo + hi) / 2.0, (hi - lo) / 2.0
        scale[scale < EPS] = 1.0  # constant dimension: centre it, do not blow it up
        keep = np.zeros(len(lo), dtype=bool)
        keep[list(self.skip_dims.get(key, ()))] = True
        if isinstance(like, torch.Tensor):
            cache_key = (key, self.mode, like.dtype, like.device)
            if cache_key not in self._cache:
                dtype = like.dtype if like.is_floating_point() else torch.float32
                self._cache[cache_key] = (
                    torch.as_tensor(offset, dtype=dtype, device=like.device),
                    torch.as_tensor(scale, dtype=dtype, device=like.device),
                    torch.as_tensor(keep, device=like.device),
                )
            return self._cache[cache_key]
        return offset, scale, keep

    def _check_shape(self, key: str, x: ArrayT) -> None:
        if x.shape[-1] != self.dim(key):
            raise ValueError(
                f"Normalizer: {key!r} has {self.dim(key)} dimensions in the statistics but the input's last "
                f"axis has {x.shape[-1]} (shape {tuple(x.shape)})."
            )

    def normalize(self, key: str, x: ArrayT) -> ArrayT:
        """Raw -> normalised; works on numpy arrays and torch tensors of shape ``[..., D]``."""
        self._check_shape(self._known(key), x)
        offset, scale, keep = self._params(key, x)
        if isinstance(x, torch.Tensor):
            y = (x - offset) / scale
            if self.mode != "meanstd":
                y = y.clamp(-1.0, 1.0)
            return torch.where(keep, x.to(y.dtype), y)
        y = (np.asarray(x, dtype=np.float64) - offset) / scale
        if self.mode != "meanstd":
            y = np.clip(y, -1.0, 1.0)
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return np.where(keep, x, y).astype(out_dtype)

    def unnormalize(self, key: str, x: ArrayT) -> ArrayT:
        """Normalised -> raw; the inverse of :meth:`normalize` inside the clipping range."""
        self._check_shape(self._known(key), x)
        offset, scale, keep = self._params(key, x)
        if isinstance(x, torch.Tensor):
            return torch.where(keep, x, x * scale + offset)
        y = np.asarray(x, dtype=np.float64) * scale + offset
        out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return np.where(keep, x, y).astype(out_dtype)

    # -- checkpoints and compatibility -------------------------------------------------------

    def state_dict(self) -> dict:
        """JSON-serialisable description; :meth:`from_state_dict` rebuilds an identical normaliser."""
        return {
            "mode": self.mode,
            "keys": list(self.keys),
            "skip_dims": {k: list(v) for k, v in self.skip_dims.items()},
            "stats": self.stats,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> Normalizer:
        missing = [k for k in ("mode", "keys", "skip_dims", "stats") if k not in state]
        if missing:
            raise KeyError(
                f"Normalizer state is missing {missing}; was it saved with Normalizer.state_dict()?"
            )
        return cls(state["stats"], mode=state["mode"], keys=state["keys"], skip_dims=state["skip_dims"])

    def check_compatible(self, other_stats: Mapping[str, Mapping[str, Sequence]] | Normalizer) -> None:
        """Raise if ``other_stats`` lacks one of our keys or has a different dimension for it.

        Use it when a checkpoint's normaliser meets a dataset or environment: values may
        differ between datasets, but keys and shapes must match.
        """
        other = other_stats.stats if isinstance(other_stats, Normalizer) else other_stats
        problems = []
        for key in self.keys:
            if key not in other:
                problems.append(f"missing key {key!r}")
                continue
            entry = other[key]
            ref = next((entry[s] for s in ("mean", "min", "q01", "max") if s in entry), None)
            if ref is None:
                problems.append(f"{key!r} has no mean/min/q01/max statistic")
                continue
            dim = int(np.asarray(ref).size)
            if dim != self.dim(key):
                problems.append(f"{key!r} has {dim} dimensions, expected {self.dim(key)}")
        if problems:
            raise ValueError(
                "Normalisation statistics are incompatible: " + "; ".join(problems) + f". The normaliser "
                f"covers {list(self.keys)} with dimensions {[self.dim(k) for k in self.keys]}."
            )
