"""Fixtures shared across the whole test tree."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread than on contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def chatty_backbone():
    """A tiny prismatic backbone with large random LM weights, so greedy tokens vary
    (decoding tests: cached vs uncached, policy vs bare backbone)."""
    from vlaworks.models.backbones import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone("prismatic-tiny", image_size=32).eval()
    with torch.no_grad():
        for p in backbone.llm.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
    return backbone

