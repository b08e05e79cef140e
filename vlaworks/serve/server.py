"""The policy server: openpi's websocket protocol in front of any :class:`ChunkPolicy`.

Per connection: the server sends the metadata (:meth:`ServingSpec.metadata`) as the first
frame; then every binary frame from the client is one msgpack-numpy observation and gets
exactly one reply, in order: ``{"actions": float32 [chunk, action_dim], "server_timing":
{...}}`` packed, or, for a request it cannot serve, a *text* frame with the error message
(openpi's client raises ``RuntimeError`` with it). Unlike openpi's server, an error never
closes the connection: the client fixes its request and goes on. A frame above
``max_message_bytes`` is refused by the websocket layer, which closes that connection with
code 1009 (message too big); other connections are unaffected.

A client may pipeline (send several frames before reading): requests of one connection are
decoded as they arrive and answered in order, so a vectorised client's observations can
share a batch (:mod:`vlaworks.serve.batching`). ``GET /healthz`` answers ``200 OK``.
SIGTERM / SIGINT close every connection (1001, going away), finish the model call in
progress and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from websockets.asyncio.server import Request, Response, Server, ServerConnection
from websockets.asyncio.server import serve as websocket_serve
from websockets.exceptions import ConnectionClosed

from vlaworks.serve.batching import RequestBatcher
from vlaworks.serve.codec import pack, unpack
from vlaworks.serve.spec import ServingSpec

if TYPE_CHECKING:
    from vlaworks.policy_api import ChunkPolicy

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
#: frames a connection may have in flight before the server stops reading it (back-pressure)
MAX_PIPELINE = 32


@dataclass(frozen=True)
class ServerOptions:
    """Network and batching settings of a :class:`PolicyServer`."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 8
    batch_wait_ms: float = 2.0
    max_message_bytes: int = 8 * 2**20


class PolicyServer:
    """Serves ``policy`` (described by ``spec``) over websocket (module doc)."""

    def __init__(
        self, policy: ChunkPolicy, spec: ServingSpec, options: ServerOptions, label: str = "policy"
    ) -> None:
        self.policy = policy
        self.spec = spec
        self.options = options
        self.connections = 0
        self.errors = 0
        self.batcher = RequestBatcher(
            policy.predict_chunk,
            max_batch=options.max_batch,
            wait_s=options.batch_wait_ms / 1000,
            peers=lambda: self.connections,
        )
        self._metadata = pack(
            spec.metadata(
                policy=label,
                max_batch=options.max_batch,
                max_message_bytes=options.max_message_bytes,
            )
        )

    async def run(self, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop`` is set; ``on_ready(port)`` is called once listening (the bound
        port, useful with ``port=0``)."""
        try:
            server = await websocket_serve(
                self._handle,
                self.options.host,
                self.options.port,
                compression=None,
                max_size=self.options.max_message_bytes,
                process_request=_health_check,
            )
        except OSError as err:
            raise ValueError(
                f"Cannot listen on {self.options.host}:{self.options.port} ({err.strerror or err}); "
                "pick another --port (0 picks a free one) or stop the server using it."
            ) from err
        batching = asyncio.create_task(self.batcher.run())
        try:
            if on_ready is not None:
                on_ready(bound_port(server))
            await stop.wait()
        finally:
            server.close(close_connections=True)
            await server.wait_closed()
            batching.cancel()
            await asyncio.gather(batching, return_exceptions=True)
            await asyncio.to_thread(self.batcher.close)

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections += 1
        replies: asyncio.Queue[asyncio.Task[bytes | str] | None] = asyncio.Queue(MAX_PIPELINE)
        sender = asyncio.create_task(_send_in_order(connection, replies))
        logger.info("client %s connected", connection.remote_address)
        try:
            await connection.send(self._metadata)
            async for message in connection:
                await replies.put(asyncio.create_task(self._reply(message)))
        except ConnectionClosed as closed:
            logger.info("client %s left: %s", connection.remote_address, closed)
        finally:
            self.connections -= 1
            await replies.put(None)
            await sender

    async def _reply(self, message: bytes | str) -> bytes | str:
        """The frame answering one request: packed actions, or a text frame with the error."""
        received = time.perf_counter()
        try:
            if isinstance(message, str):
                raise ValueError(
                    "Got a text frame; send each observation as a binary msgpack-numpy frame "
                    "(as openpi_client.msgpack_numpy.packb does)."
                )
            observation = self.spec.check(unpack(message))
        except ValueError as err:
            self.errors += 1
            logger.info("bad request: %s", err)
            return f"bad request: {err}"
        decoded = time.perf_counter()
        try:
            result = await self.batcher.submit(observation)
        except Exception as err:
            self.errors += 1
            logger.exception("policy failed on a request")
            return f"policy error: {type(err).__name__}: {err}"
        timing = {
            "decode_ms": 1000 * (decoded - received),
            "queue_ms": result.queue_ms,
            "infer_ms": result.infer_ms,
            "batch_size": result.batch_size,
            "total_ms": 1000 * (time.perf_counter() - received),
        }
        return pack({"actions": result.actions, "server_timing": timing})


async def _send_in_order(
    connection: ServerConnection, replies: asyncio.Queue[asyncio.Task[bytes | str] | None]
) -> None:
    """Send each reply when it is ready, in request order; after the client has gone, keep
    draining so the reading side never blocks on a full queue."""
    while (task := await replies.get()) is not None:
        reply = await task
        with contextlib.suppress(ConnectionClosed):
            await connection.send(reply)


def _health_check(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == HEALTH_PATH:
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


def bound_port(server: Server) -> int:
    """The TCP port ``server`` listens on."""
    return int(next(iter(server.sockets)).getsockname()[1])


def load_served_policy(
    policy: str | Path, device: str | None = None
) -> tuple[ChunkPolicy, ServingSpec, Path]:
    """The policy a run folder or policy folder names, loaded on ``device`` (default: cuda if
    available), with its :class:`ServingSpec` and the policy folder it came from."""
    from vlaworks.eval.workers import default_device
    from vlaworks.models.checkpoint import load_policy, resolve_policy_folder

    folder = resolve_policy_folder(policy)
    loaded = load_policy(folder, device=device or default_device())
    return loaded, ServingSpec.from_policy(loaded), folder


def serve(
    policy: str | Path,
    options: ServerOptions,
    announce: Callable[[str], None],
    device: str | None = None,
) -> PolicyServer:
    """Load ``policy`` and serve it until SIGTERM / SIGINT; ``announce`` gets the address
    line once listening and a summary line after shutdown. Returns the stopped server."""
    loaded, spec, folder = load_served_policy(policy, device)
    server = PolicyServer(loaded, spec, options, label=str(folder))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        def ready(port: int) -> None:
            address = f"{options.host}:{port}"
            announce(
                f"serving {folder} on ws://{address} (health: http://{address}{HEALTH_PATH}); "
                "SIGTERM or Ctrl-C stops"
            )

        await server.run(stop, on_ready=ready)

    asyncio.run(main())
    batcher = server.batcher
    announce(
        f"server stopped: {batcher.requests} requests in {batcher.batches} model calls, "
        f"{server.errors} refused"
    )
    return server
