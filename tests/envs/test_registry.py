"""The env registry: names are unique unless a replacement is asked for."""

from __future__ import annotations

import pytest

from vlaworks import envs


def test_registering_a_taken_name_is_an_error_unless_replacing(monkeypatch):
    monkeypatch.setattr(envs, "_REGISTRY", {})
    envs.register_env("toy", lambda **kw: ("first", kw))
    with pytest.raises(ValueError, match="'toy' is already registered; .* or pass replace=True"):
        envs.register_env("toy", lambda **kw: ("second", kw))
    assert envs.make_env("toy", a=1) == ("first", {"a": 1})
    envs.register_env("toy", lambda **kw: ("second", kw), replace=True)
    assert envs.make_env("toy") == ("second", {})


def test_the_tabletop_world_is_registered():
    assert "tabletop" in envs._REGISTRY
    with pytest.raises(ValueError, match="unknown environment 'nowhere'"):
        envs.make_env("nowhere")
