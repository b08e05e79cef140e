"""msgpack with numpy arrays, byte-compatible with openpi's ``openpi_client.msgpack_numpy``.

An array travels as a msgpack map with *binary* keys::

    {b"__ndarray__": True, b"data": <raw bytes, C order>, b"dtype": "<f4", b"shape": [T, D]}

and a numpy scalar as ``{b"__npgeneric__": True, b"data": <item>, b"dtype": "<f4"}``.
Everything else is plain msgpack (maps, lists, str, bytes, numbers, nil).

Only numeric and boolean dtypes cross the wire (kinds ``b i u f``): object, void (structured)
and complex dtypes are refused on both sides, so decoding never runs pickle or builds
Python objects from the payload, and a decoded array's byte count must match its dtype and
shape exactly. Decoded arrays are writable copies (torch warns on read-only buffers).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

#: dtype kinds that may cross the wire: bool, signed / unsigned int, float
ALLOWED_KINDS = "biuf"
#: more dimensions than any observation or action needs; bounds the shape a sender can claim
MAX_NDIM = 8


class CodecError(ValueError):
    """A frame that is not valid msgpack-numpy, or an array this protocol does not carry."""


def _dtype(text: Any) -> np.dtype:
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as err:
        raise CodecError(f"Array dtype {text!r} is not a numpy dtype string (e.g. '<f4', '|u1').") from err
    if dtype.kind not in ALLOWED_KINDS:
        raise CodecError(
            f"Array dtype {dtype.str!r} is not allowed; send bool, integer or float arrays "
            "(object, structured and complex arrays are refused)."
        )
    return dtype


def _encode(obj: Any) -> Any:
    """msgpack ``default`` hook: numpy arrays and scalars as openpi's ext-like maps."""
    if isinstance(obj, np.ndarray | np.generic):
        dtype = _dtype(obj.dtype)
        if isinstance(obj, np.ndarray):
            return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": dtype.str, b"shape": obj.shape}
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": dtype.str}
    raise CodecError(f"Cannot send a {type(obj).__name__}; send numpy arrays, numbers, str, lists and dicts.")


def _decode(obj: dict) -> Any:
    """msgpack ``object_hook``: rebuild arrays and scalars, checking dtype, shape and size."""
    if b"__ndarray__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        shape, data = obj.get(b"shape"), obj.get(b"data")
        if (
            not isinstance(shape, list | tuple)
            or len(shape) > MAX_NDIM
            or not all(isinstance(n, int) and n >= 0 for n in shape)
        ):
            raise CodecError(f"Array shape {shape!r} is not a list of at most {MAX_NDIM} sizes >= 0.")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            size = len(data) if isinstance(data, bytes) else type(data).__name__
            raise CodecError(
                f"Array data ({size} bytes) does not match dtype {dtype.str} and shape {list(shape)}."
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if b"__npgeneric__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        try:
            return dtype.type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError) as err:
            raise CodecError(f"Scalar {obj.get(b'data')!r} is not a {dtype.str} value.") from err
    return obj


def pack(obj: Any) -> bytes:
    """One msgpack-numpy frame for ``obj`` (dicts, lists, numbers, str, numpy arrays)."""
    return msgpack.packb(obj, default=_encode)


def unpack(data: bytes) -> Any:
    """Decode one frame; raises :class:`CodecError` naming what is wrong with it."""
    try:
        return msgpack.unpackb(data, object_hook=_decode)
    except CodecError:
        raise
    except (ValueError, TypeError) as err:  # msgpack's Unpack/Format/Stack errors are ValueErrors
        raise CodecError(f"Frame is not valid msgpack ({type(err).__name__}: {err}).") from err
