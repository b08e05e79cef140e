"""msgpack-numpy: openpi's byte layout, arrays only, lying or hostile frames refused."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from vlaworks.serve.codec import CodecError, pack, unpack


@pytest.mark.parametrize("dtype", ["uint8", "int64", "float32", ">f8", "bool", "float16"])
def test_arrays_round_trip_exactly(dtype) -> None:
    array = (np.arange(24) % 5).astype(dtype).reshape(2, 3, 4)
    out = unpack(pack({"x": array}))["x"]
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # writable, so torch.from_numpy does not warn


def test_layout_is_openpis() -> None:
    """The bytes decode with plain msgpack into openpi's binary-key map (what its client reads)."""
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    raw = msgpack.unpackb(pack({"image": image[:, ::-1], "scale": np.float32(0.5), "text": "hi"}))
    assert raw["image"] == {
        b"__ndarray__": True,
        b"data": image[:, ::-1].tobytes(),
        b"dtype": "|u1",
        b"shape": [2, 2, 3],
    }
    assert raw["scale"] == {b"__npgeneric__": True, b"data": 0.5, b"dtype": "<f4"}
    assert raw["text"] == "hi"
    assert unpack(msgpack.packb(raw))["scale"] == np.float32(0.5)


@pytest.mark.parametrize(
    "value",
    [np.array([None, 1], dtype=object), np.zeros(2, dtype=[("a", "<f4")]), np.zeros(2, np.complex64), {1, 2}],
    ids=["object", "structured", "complex", "set"],
)
def test_pack_refuses_what_the_wire_does_not_carry(value) -> None:
    with pytest.raises(CodecError, match="not allowed|Cannot send"):
        pack({"x": value})


def _array(dtype, shape, data) -> bytes:
    return msgpack.packb({"x": {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_array("|O", [1], b"\0" * 8), "dtype '|O' is not allowed"),
        (_array("|V8", [1], b"\0" * 8), "dtype '|V8' is not allowed"),
        (_array("float99", [1], b"\0" * 4), "not a numpy dtype string"),
        (_array("<f4", [1000], b"\0" * 8), r"\(8 bytes\) does not match dtype <f4 and shape \[1000\]"),
        (_array("<f4", [-2], b""), "not a list of at most 8 sizes"),
        (_array("<f4", [1] * 9, b"\0" * 4), "not a list of at most 8 sizes"),
        (_array("<f4", [1], "text"), "does not match"),
        (b"\x93\x01", "not valid msgpack"),
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb(1) + msgpack.packb(2), "not valid msgpack"),
    ],
    ids=[
        "object", "void", "unknown-dtype", "lying-size", "negative-dim", "too-many-dims", "text-data",
        "truncated", "reserved-byte", "two-objects",
    ],
)
def test_unpack_refuses_bad_frames_with_a_reason(frame, message) -> None:
    with pytest.raises(CodecError, match=message):
        unpack(frame)
