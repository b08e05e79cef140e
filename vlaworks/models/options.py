"""Typed part options: a plain JSON mapping checked against the part's options dataclass.

Configs keep each part's options as a plain mapping (what ``config.json`` stores and what
``--set policy.head.options.x=...`` writes); :func:`parse_options` turns it into the part's
dataclass. An unknown or misspelt key is an error with a "did you mean" hint
(``difflib``), a value of the wrong type a one-line error naming the expected type. JSON
has no tuples and no distinction between ``1`` and ``1.0``, so lists become tuples and
integers become floats where the field asks for them; nothing else is converted.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" did you mean 'x'?"`` for the closest of ``known`` to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def parse_options(cls: type[T], raw: Mapping[str, Any], what: str) -> T:
    """``cls(**raw)`` after checking every key and value type against the dataclass ``cls``;
    ``what`` names the part in messages (e.g. ``"backbone 'prismatic-tiny'"``)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"The options of {what} must be a mapping of option names to values; got {raw!r}.")
    names = sorted(f.name for f in fields(cls) if f.init)
    for key in raw:
        if key not in names:
            if not names:
                raise ValueError(f"Unknown option {key!r} for {what}; it takes no options.")
            hint = did_you_mean(key, names)
            listing = f"{'Options' if hint else 'options'}: {', '.join(names)}."
            raise ValueError(f"Unknown option {key!r} for {what};{hint} {listing}")
    hints = get_type_hints(cls)
    return cls(**{key: _check(value, hints[key], key, what) for key, value in raw.items()})


def _check(value: Any, tp: Any, key: str, what: str) -> Any:
    ok, converted = _convert(value, tp)
    if not ok:
        raise ValueError(f"Option {key!r} of {what} must be {describe(tp)}; got {value!r}.")
    return converted


def _convert(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(True, value as tp wants it)`` when ``value`` is of type ``tp``, else ``(False, None)``."""
    origin = get_origin(tp)
    if tp is Any:
        return True, value
    if tp is type(None):
        return value is None, None
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            ok, converted = _convert(value, arg)
            if ok:
                return True, converted
        return False, None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(tp)), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        return _convert_tuple(value, get_args(tp))
    raise TypeError(f"parse_options does not handle the annotation {tp!r}; use int, float, str, bool, "
                    "Literal, tuples or their unions with None.")


def _convert_tuple(value: Any, args: tuple[Any, ...]) -> tuple[bool, Any]:
    if not isinstance(value, (list, tuple)):
        return False, None
    items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
    if len(items) != len(value):
        return False, None
    out = []
    for item, tp in zip(value, items, strict=True):
        ok, converted = _convert(item, tp)
        if not ok:
            return False, None
        out.append(converted)
    return True, tuple(out)


def describe(tp: Any) -> str:
    """The type ``tp`` in words, as an error message names it."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        rest = [a for a in args if a is not type(None)]
        text = " or ".join(describe(a) for a in rest)
        return f"{text} or null" if len(rest) < len(args) else text
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0])}" if len(set(args)) == 1 else f"a list {list(args)}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return names.get(tp, repr(tp))


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(tp, describe(tp))
