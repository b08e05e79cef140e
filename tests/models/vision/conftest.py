"""Shared checks for the vision towers' backbone tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vlaworks.models.backbones import build_backbone


def _reloads_exactly(model, images: torch.Tensor, folder: Path) -> Path:
    """Save ``model`` to ``folder``, rebuild it from there and check both give the same hidden states."""
    model.save_pretrained(str(folder))
    again = build_backbone(str(folder)).eval()
    with torch.no_grad():
        a = model(images, ["put the red cube in the bowl"]).hidden
        b = again(images, ["put the red cube in the bowl"]).hidden
    torch.testing.assert_close(a, b)
    return folder


@pytest.fixture
def reloads_exactly(tmp_path) -> Callable[..., Path]:
    """``reloads_exactly(model, images) -> folder``: the saved model rebuilds bit-for-bit."""
    return lambda model, images: _reloads_exactly(model, images, tmp_path / "vlm")
