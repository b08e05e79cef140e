"""The robot-side client of a policy server (numpy, msgpack and websockets only).

:class:`PolicyClient` speaks the same protocol as openpi's ``WebsocketClientPolicy``
(``infer(obs)``, ``get_server_metadata()``) against a vlaworks or an openpi server, and can
pipeline several observations (:meth:`PolicyClient.infer_many`) so the server may batch
them. :class:`RemotePolicy` wraps it as a :class:`~vlaworks.policy_api.ChunkPolicy`, which
is how ``vlaworks eval --policy ws://HOST:PORT`` evaluates a served policy.

This module imports neither torch nor the rest of vlaworks, so it runs on a robot's computer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from vlaworks.serve.codec import pack, unpack

REMOTE_SCHEMES = ("ws://", "wss://")
#: seconds to wait for one reply before giving up on the connection
DEFAULT_TIMEOUT_S = 120.0


class ServerError(RuntimeError):
    """The server refused a request (its message says why) or closed the connection."""


def is_remote_spec(spec: Any) -> bool:
    """Whether a ``--policy`` value names a policy server (``ws://`` or ``wss://`` URL)."""
    return isinstance(spec, str) and spec.startswith(REMOTE_SCHEMES)


class PolicyClient:
    """A synchronous connection to a policy server; ``metadata`` is what it sent on connect."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.uri = host if host.startswith(REMOTE_SCHEMES) else f"ws://{host}"
        if port is not None:
            self.uri += f":{port}"
        self.timeout_s = timeout_s
        self.metadata: dict[str, Any] = {}
        self._exit = ExitStack()  # websockets >= 17.1 wants connect() used as a context manager
        try:
            self._ws: ClientConnection = self._exit.enter_context(
                connect(self.uri, compression=None, max_size=None, open_timeout=open_timeout_s)
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
            raise ConnectionError(
                f"No policy server answers at {self.uri} ({err}); start one with "
                "`vlaworks serve --policy RUN --port PORT` or fix the address."
            ) from err
        self.metadata = self._receive()

    def get_server_metadata(self) -> dict[str, Any]:
        """The metadata the server sent on connect (openpi's client method name)."""
        return self.metadata

    def infer(self, observation: Mapping[str, Any]) -> dict[str, Any]:
        """One observation -> the server's reply (``actions`` ``[chunk, D]``, ``server_timing``)."""
        return self.infer_many([observation])[0]

    def infer_many(self, observations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Send every observation, then read the replies (in order): one round trip for a
        vectorised env, and the server may batch them. Raises :class:`ServerError` with the
        first refused request's message after reading all replies."""
        frames = [pack(dict(obs)) for obs in observations]
        try:
            for frame in frames:
                self._ws.send(frame)
        except ConnectionClosed as err:
            raise self._closed_error(err) from err
        replies = [self._receive() for _ in frames]
        refused = [r for r in replies if isinstance(r, str)]
        if refused:
            raise ServerError(f"{self.uri} refused a request: {refused[0]}")
        return replies

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by either side)."""
        return self._ws.state is State.CLOSED

    def close(self) -> None:
        """Close the connection."""
        self._exit.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> Any:
        """The next reply: decoded binary frame, or a text frame's error message as ``str``."""
        try:
            frame = self._ws.recv(timeout=self.timeout_s)
        except TimeoutError as err:
            self._exit.close()
            raise ServerError(
                f"{self.uri} sent no reply within {self.timeout_s} s; the connection is closed "
                "(raise timeout_s for a slow model)."
            ) from err
        except ConnectionClosed as err:
            raise self._closed_error(err) from err
        return frame if isinstance(frame, str) else unpack(frame)

    def _closed_error(self, err: ConnectionClosed) -> ServerError:
        rcvd = err.rcvd
        if rcvd is not None and rcvd.code == 1009:
            limit = self.metadata.get("max_message_bytes", "its limit")
            return ServerError(
                f"{self.uri} closed the connection: a request exceeded the server's max message size "
                f"({limit} bytes); send smaller images or start the server with a larger --max-message-mb."
            )
        reason = f"{rcvd.code} {rcvd.reason}".strip() if rcvd is not None else "no close frame"
        return ServerError(f"{self.uri} closed the connection ({reason}); reconnect when it is back.")


class RemotePolicy:
    """A :class:`~vlaworks.policy_api.ChunkPolicy` whose chunks come from a policy server.

    Sends only what the server's metadata says the policy reads (its cameras; the state if
    it uses state), pipelining the observations of one call. A connection the server has
    closed (e.g. a restart between episodes) is reopened on the next call, provided the
    server still serves the same layout.
    """

    def __init__(self, uri: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> None:
        self.uri = uri
        self.timeout_s = timeout_s
        self.client = self._connect()
        self.cameras, self.chunk_size, self.use_state = self._layout(self.client.metadata)

    def reset(self) -> None:
        """Nothing to clear: the server keeps no per-episode state."""

    def predict_chunk(self, observations: list[dict[str, Any]]) -> np.ndarray:
        """``float32 [B, chunk_size, action_dim]`` from the server, one row per observation."""
        if self.client.closed:
            self.client = self._connect()
            if self._layout(self.client.metadata) != (self.cameras, self.chunk_size, self.use_state):
                raise ServerError(f"{self.uri} now serves another policy layout; start a new evaluation.")
        replies = self.client.infer_many([self._request(obs) for obs in observations])
        return np.stack([np.asarray(r["actions"], dtype=np.float32) for r in replies])

    def close(self) -> None:
        """Close the connection to the server."""
        self.client.close()

    def _connect(self) -> PolicyClient:
        return PolicyClient(self.uri, timeout_s=self.timeout_s)

    def _layout(self, meta: Mapping[str, Any]) -> tuple[tuple[str, ...], int, bool]:
        missing = [k for k in ("cameras", "chunk_size", "use_state") if k not in meta]
        if missing:
            self.client.close()
            raise ValueError(
                f"{self.uri} is not a vlaworks policy server: its metadata lacks {missing}; "
                "use openpi_client against other servers."
            )
        return tuple(meta["cameras"]), int(meta["chunk_size"]), bool(meta["use_state"])

    def _request(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        images = obs.get("images", {})
        request = {
            "images": {c: images[c] for c in self.cameras if c in images},
            "instruction": obs.get("instruction"),
        }
        if self.use_state and "state" in obs:
            request["state"] = np.asarray(obs["state"], dtype=np.float32)
        return request
