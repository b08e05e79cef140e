"""Fixtures for token-head tests: one tiny GPT-2 backbone per module (see token_fakes)."""

from __future__ import annotations

import pytest
import torch
from token_fakes import TinyGPT2Backbone


@pytest.fixture(scope="module")
def backbone() -> TinyGPT2Backbone:
    torch.set_num_threads(1)
    return TinyGPT2Backbone()
