"""Fixtures for the data-layer tests: small synthetic episodes written with DatasetWriter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from data_fakes import make_frame, tabletop_features

from vlaworks.data.lerobot import DatasetWriter


@pytest.fixture
def write_dataset(tmp_path: Path) -> Callable[..., tuple[Path, list[list[dict]]]]:
    """Factory: writes episodes of the given lengths and returns (root, frames per episode)."""

    def write(lengths=(6, 9, 4), name: str = "ds", **writer_kwargs) -> tuple[Path, list[list[dict]]]:
        root = tmp_path / name
        rng = np.random.default_rng(0)
        episodes: list[list[dict]] = []
        with DatasetWriter(root, fps=10, features=tabletop_features(), **writer_kwargs) as writer:
            for e, length in enumerate(lengths):
                task = f"pick the block {e % 2}"
                frames = [make_frame(t, e, rng, task) for t in range(length)]
                for frame in frames:
                    writer.add_frame(frame)
                writer.save_episode()
                episodes.append(frames)
        return root, episodes

    return write
