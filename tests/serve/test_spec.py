"""The served policy's contract: what the metadata announces and what a request must hold."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.serve.spec import RequestError, ServingSpec

SPEC = ServingSpec(cameras=("base",), chunk_size=4, action_dim=7, image_size=32, use_state=True, state_dim=3)


def test_check_keeps_what_the_policy_reads() -> None:
    image = np.zeros((5, 6, 3), np.uint8)
    request = {
        "images": {"base": image, "wrist": image},
        "instruction": "go",
        "state": np.array([1.0, 2.0, 3.0]),  # float64 is fine: it becomes float32
        "prompt": "extra keys are ignored",
    }
    obs = SPEC.check(request)
    assert list(obs) == ["images", "instruction", "state"] and list(obs["images"]) == ["base"]
    assert obs["state"].dtype == np.float32
    stateless = ServingSpec(cameras=("base",), chunk_size=4, action_dim=7)
    assert "state" not in stateless.check({"images": {"base": image}, "instruction": "go"})


IMAGE = np.zeros((4, 4, 3), np.uint8)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"images": {"base": np.zeros((0, 4, 3), np.uint8)}, "instruction": "go"}, r"uint8 \[0, 4, 3\]"),
        ({"images": {"base": "png bytes"}, "instruction": "go"}, "got str"),
        ({"images": {"base": IMAGE}, "instruction": b"go"}, "got bytes"),
        ({"images": {"base": IMAGE}, "instruction": "go"}, "reads the proprio 'state'"),
    ],
    ids=["empty-image", "encoded-image", "bytes-instruction", "no-state"],
)
def test_check_names_what_is_wrong(request_, message) -> None:
    with pytest.raises(RequestError, match=message):
        SPEC.check(request_)


def test_metadata_describes_the_request() -> None:
    meta = SPEC.metadata(max_batch=8)
    assert meta["request"] == {
        "images": {"base": "uint8 [H, W, 3]"},
        "instruction": "str",
        "state": "float32 [3]",
    }
    assert meta["reply"]["actions"] == "float32 [4, 7]"
    assert meta["protocol"] == "openpi-websocket-msgpack-numpy" and meta["max_batch"] == 8
