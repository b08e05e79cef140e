"""Gymnasium adapters behind one interface (:mod:`vlaworks.envs.base`) and a name registry.

``make_env("tabletop", suite="spatial", ...)`` builds the built-in MuJoCo world,
``make_env("libero", suite="libero_spatial", ...)`` a LIBERO suite (:mod:`vlaworks.envs.libero`)
and ``make_env("metaworld", suite="mt10", ...)`` Meta-World (:mod:`vlaworks.envs.metaworld`); their
simulators are imported only when an env is built (both are optional), so a Python without them
still lists them. Other adapters register themselves with :func:`register_env` so that evaluation
never imports a
simulator directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_env(name: str, factory: Callable[..., Any], *, replace: bool = False) -> None:
    """Register ``factory(**kw) -> env`` under ``name``. A name already taken is an error
    (two adapters must not silently shadow each other) unless ``replace=True``."""
    if name in _REGISTRY and not replace:
        raise ValueError(
            f"An environment named {name!r} is already registered; pick another name, or pass "
            "replace=True to replace it on purpose."
        )
    _REGISTRY[name] = factory


def _tabletop(**kw: Any) -> Any:
    from vlaworks.envs.tabletop import TabletopEnv

    return TabletopEnv(**kw)


def _libero(**kw: Any) -> Any:
    from vlaworks.envs.libero import make_libero_env

    return make_libero_env(**kw)


register_env("tabletop", _tabletop)
register_env("libero", _libero)


def _metaworld(**kw: Any) -> Any:
    from vlaworks.envs.metaworld import MetaWorldEnv  # needs the optional `metaworld` package

    return MetaWorldEnv(**kw)


register_env("metaworld", _metaworld)


def make_env(name: str, **kw: Any) -> Any:
    """Build the environment registered as ``name`` with keyword arguments ``kw``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown environment {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**kw)
