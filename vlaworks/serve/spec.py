"""What a served policy reads and returns: the metadata sent on connect and the request check.

A :class:`ServingSpec` is read from a policy's processor and config (cameras, image size,
chunk, action and state dimensions, whether state is used). The server sends
:meth:`ServingSpec.metadata` to every client on connect, so a robot-side client knows what
to send, and checks every decoded request with :meth:`ServingSpec.check` before it reaches
the model, so a wrong key, dtype or shape is an error reply naming the fix instead of a
failure inside a batched model call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

import vlaworks

#: the openpi protocol this server speaks (websocket, msgpack-numpy, metadata on connect)
PROTOCOL = "openpi-websocket-msgpack-numpy"


class RequestError(ValueError):
    """A decoded request that does not match the served policy's observation layout."""


@dataclass(frozen=True)
class ServingSpec:
    """The observation layout a served policy reads and the chunk it returns."""

    cameras: tuple[str, ...]
    chunk_size: int
    action_dim: int
    image_size: int | None = None
    use_state: bool = False
    state_dim: int | None = None

    @classmethod
    def from_policy(cls, policy: Any) -> ServingSpec:
        """The spec of a :class:`~vlaworks.models.policy.VLAPolicy` (its processor and config)."""
        from vlaworks.processing import STATE_KEY

        processor, config = policy.processor, policy.config
        state_dim = config.state_dim
        normalizer = processor.normalizer
        if processor.use_state and normalizer is not None and STATE_KEY in normalizer.keys:
            state_dim = normalizer.dim(STATE_KEY)
        return cls(
            cameras=tuple(processor.cameras),
            chunk_size=int(config.chunk_size),
            action_dim=int(config.action_dim),
            image_size=processor.image_size,
            use_state=processor.use_state,
            state_dim=state_dim,
        )

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """The map sent on connect: the layout, a human-readable request example, and ``extra``."""
        state = f"float32 [{self.state_dim or 'S'}]"
        request: dict[str, Any] = {
            "images": {camera: "uint8 [H, W, 3]" for camera in self.cameras},
            "instruction": "str",
        }
        if self.use_state:
            request["state"] = state
        return {
            "server": "vlaworks",
            "version": vlaworks.__version__,
            "protocol": PROTOCOL,
            "cameras": list(self.cameras),
            "image_size": self.image_size,
            "chunk_size": self.chunk_size,
            "action_dim": self.action_dim,
            "use_state": self.use_state,
            "state_dim": self.state_dim,
            "request": request,
            "reply": {"actions": f"float32 [{self.chunk_size}, {self.action_dim}]", "server_timing": "map"},
            **extra,
        }

    def check(self, request: Any) -> dict[str, Any]:
        """The observation the policy reads from a decoded request (extra keys are dropped);
        raises :class:`RequestError` naming the wrong key, dtype or shape."""
        if not isinstance(request, Mapping):
            raise RequestError(f"Request is a {type(request).__name__}; send a map {self._layout()}.")
        images = request.get("images")
        if not isinstance(images, Mapping):
            raise RequestError(f"Request lacks the 'images' map of camera -> image; send {self._layout()}.")
        views: dict[str, np.ndarray] = {}
        for camera in self.cameras:
            image = images.get(camera)
            if image is None:
                raise RequestError(
                    f"Request lacks camera {camera!r} (it has {sorted(map(str, images))}); "
                    f"the policy reads cameras {list(self.cameras)}."
                )
            if not _is_image(image):
                got = _describe(image)
                raise RequestError(f"Camera {camera!r} must be a uint8 [H, W, 3] array; got {got}.")
            views[camera] = image
        instruction = request.get("instruction")
        if not isinstance(instruction, str):
            raise RequestError(f"Request 'instruction' must be a str; got {type(instruction).__name__}.")
        observation: dict[str, Any] = {"images": views, "instruction": instruction}
        if self.use_state:
            observation["state"] = self._state(request.get("state"))
        return observation

    def _state(self, state: Any) -> np.ndarray:
        want = f"a float array of shape [{self.state_dim or 'S'}]"
        if not isinstance(state, np.ndarray) or state.dtype.kind != "f" or state.ndim != 1:
            raise RequestError(f"The policy reads the proprio 'state': send {want}; got {_describe(state)}.")
        if self.state_dim is not None and len(state) != self.state_dim:
            raise RequestError(f"'state' has {len(state)} values; send {want}.")
        if not np.isfinite(state).all():
            raise RequestError("'state' holds NaN or infinite values; send finite numbers.")
        return state.astype(np.float32, copy=False)

    def _layout(self) -> str:
        state = ', "state": float32 [S]' if self.use_state else ""
        cams = ", ".join(f'"{c}": uint8 [H, W, 3]' for c in self.cameras)
        return f'{{"images": {{{cams}}}, "instruction": str{state}}}'


def _describe(value: Any) -> str:
    """``"float32 [64, 64, 3]"`` for an array, the type name otherwise (for error messages)."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {list(value.shape)}"
    return type(value).__name__


def _is_image(value: Any) -> bool:
    """A non-empty uint8 ``[H, W, 3]`` array."""
    return (
        isinstance(value, np.ndarray)
        and value.dtype == np.uint8
        and value.ndim == 3
        and value.shape[-1] == 3
        and value.size > 0
    )
