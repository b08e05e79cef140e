"""Serving policies to robots over openpi's websocket + msgpack-numpy protocol.

* :mod:`~vlaworks.serve.codec`: msgpack with numpy arrays (openpi's byte format, arrays only);
* :mod:`~vlaworks.serve.spec`: the metadata sent on connect and the request check;
* :mod:`~vlaworks.serve.batching`: concurrent requests batched into one model call;
* :mod:`~vlaworks.serve.server`: ``vlaworks serve`` (websocket server, health check, shutdown);
* :mod:`~vlaworks.serve.client`: :class:`PolicyClient` and :class:`RemotePolicy` (a ChunkPolicy).
"""

from vlaworks.serve.client import PolicyClient, RemotePolicy, ServerError, is_remote_spec
from vlaworks.serve.codec import CodecError, pack, unpack

__all__ = ["CodecError", "PolicyClient", "RemotePolicy", "ServerError", "is_remote_spec", "pack", "unpack"]
