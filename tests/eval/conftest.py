"""Fixtures of the evaluation tests; the fake env and policies live in ``eval_fakes``."""

import pytest
from eval_fakes import FakeReachEnv


@pytest.fixture
def fake_env() -> FakeReachEnv:
    """A fresh 1-D reach env on the short task."""
    return FakeReachEnv("toy", "toy/reach")
