"""A real ``vlaworks serve`` process on 127.0.0.1 driven by our client and raw websockets."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import msgpack
import numpy as np
import pytest
from served import STATE_DIM, observation
from typer.testing import CliRunner
from websockets.sync.client import connect

from vlaworks.cli import app
from vlaworks.serve.client import PolicyClient, RemotePolicy, ServerError
from vlaworks.serve.codec import pack
from vlaworks.serve.process import ServerProcess


@pytest.fixture(scope="module")
def local(checkpoint):
    """The same checkpoint loaded in this process."""
    from vlaworks.models.checkpoint import load_policy

    return load_policy(checkpoint)


def test_metadata_says_what_to_send(server) -> None:
    with PolicyClient(server.uri) as client:
        meta = client.get_server_metadata()
    assert meta["cameras"] == ["base", "wrist"]
    assert (meta["image_size"], meta["chunk_size"], meta["action_dim"]) == (32, 4, 7)
    assert meta["use_state"] is True and meta["state_dim"] == STATE_DIM
    assert meta["request"]["state"] == f"float32 [{STATE_DIM}]"
    assert meta["max_message_bytes"] == 2**20


def test_round_trip_gives_the_in_process_actions(server, local) -> None:
    observations = [observation(seed) for seed in range(3)]
    with PolicyClient(server.uri) as client:
        for obs in observations:
            reply = client.infer(obs)
            assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (4, 7)
            np.testing.assert_array_equal(reply["actions"], local.predict_chunk([obs])[0])
            timing = reply["server_timing"]
            assert timing["batch_size"] == 1 and 0 < timing["infer_ms"] <= timing["total_ms"]
    remote = RemotePolicy(server.uri)
    try:
        assert remote.chunk_size == 4
        one = observations[:1]
        np.testing.assert_array_equal(remote.predict_chunk(one), local.predict_chunk(one))
        remote.client.close()  # a dropped connection is reopened on the next call
        np.testing.assert_array_equal(remote.predict_chunk(one), local.predict_chunk(one))
        # several observations are pipelined and may be batched in other groups than in process
        expected = local.predict_chunk(observations)
        np.testing.assert_allclose(remote.predict_chunk(observations), expected, atol=1e-5)
    finally:
        remote.close()


def _ndarray(dtype: str, shape: list[int], data: bytes) -> dict:
    """An array in openpi's wire format, built by hand (so it may lie about itself)."""
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def _with(**changes) -> bytes:
    obs = observation(0)
    obs.update(changes)
    return pack(obs)


MALFORMED = {
    "not msgpack": (b"\xc1\x00garbage", "not valid msgpack"),
    "truncated": (pack(observation(0))[:-10], "not valid msgpack"),
    "text frame": ("hello", "binary msgpack-numpy frame"),
    "not a map": (pack([1, 2, 3]), "Request is a list"),
    "no images": (_with(images=None), "lacks the 'images' map"),
    "missing camera": (_with(images={"base": np.zeros((8, 8, 3), np.uint8)}), "lacks camera 'wrist'"),
    "float image": (
        _with(images={"base": np.zeros((8, 8, 3), np.float32), "wrist": np.zeros((8, 8, 3), np.uint8)}),
        "'base' must be a uint8 [H, W, 3] array; got float32 [8, 8, 3]",
    ),
    "gray image": (
        _with(images={"base": np.zeros((8, 8), np.uint8), "wrist": np.zeros((8, 8, 3), np.uint8)}),
        "got uint8 [8, 8]",
    ),
    "no instruction": (_with(instruction=None), "'instruction' must be a str"),
    "short state": (_with(state=np.zeros(3, np.float32)), "'state' has 3 values"),
    "int state": (_with(state=np.zeros(STATE_DIM, np.int64)), "got int64 [7]"),
    "nan state": (_with(state=np.full(STATE_DIM, np.nan, np.float32)), "NaN or infinite"),
    "object dtype": (msgpack.packb({"state": _ndarray("|O", [1], b"\0" * 8)}), "dtype '|O' is not allowed"),
    "lying size": (msgpack.packb({"state": _ndarray("<f4", [1000], b"\0" * 8)}), "does not match dtype"),
}


def test_malformed_frames_get_an_error_reply_and_the_connection_stays(server) -> None:
    with connect(server.uri, compression=None, max_size=None) as ws:
        ws.recv(timeout=30)  # metadata
        for name, (frame, expected) in MALFORMED.items():
            ws.send(frame)
            reply = ws.recv(timeout=30)
            assert isinstance(reply, str) and expected in reply, (name, reply)
        ws.send(pack(observation(1)))
        assert msgpack.unpackb(ws.recv(timeout=30))["actions"][b"shape"] == [4, 7]


def test_oversized_frame_closes_only_its_connection(server) -> None:
    big = observation(2, size=620)  # 3 x 620 x 620 x 3 bytes > 1 MiB
    with PolicyClient(server.uri) as client, pytest.raises(ServerError, match="max message size"):
        client.infer(big)
    with PolicyClient(server.uri) as client:
        assert client.infer(observation(2))["actions"].shape == (4, 7)


def test_eight_concurrent_clients_are_batched(server, local) -> None:
    clients = [PolicyClient(server.uri) for _ in range(8)]
    start = threading.Barrier(len(clients))
    replies: dict[int, list[dict]] = {}

    def drive(i: int) -> None:
        start.wait()
        replies[i] = [clients[i].infer(observation(10 * i + k)) for k in range(3)]

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for client in clients:
        client.close()
    assert sorted(replies) == list(range(8))
    for i, chunks in replies.items():
        expected = local.predict_chunk([observation(10 * i + k) for k in range(3)])
        got = np.stack([r["actions"] for r in chunks])
        np.testing.assert_allclose(got, expected, atol=1e-5)  # batched numerics, not bitwise
    assert max(r["server_timing"]["batch_size"] for rs in replies.values() for r in rs) > 1


KILLED_CLIENT = """
import sys, time
from served import observation
from vlaworks.serve.client import PolicyClient
from vlaworks.serve.codec import pack
client = PolicyClient(sys.argv[1])
for seed in range(4):
    client._ws.send(pack(observation(seed)))
print("sent", flush=True)
time.sleep(120)
"""


def test_client_killed_mid_request_leaves_the_server_up(server, tmp_path) -> None:
    script = tmp_path / "client.py"
    script.write_text(KILLED_CLIENT)
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, str(script), server.uri],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        assert child.stdout.readline().strip() == "sent"
    finally:
        child.kill()
        child.wait()
    with PolicyClient(server.uri) as client:
        assert client.infer(observation(5))["actions"].shape == (4, 7)
    assert "Traceback" not in server.output()


def test_health_check(server) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10) as response:
        assert response.status == 200 and response.read() == b"OK\n"


def test_port_in_use_is_a_one_line_error(server, checkpoint) -> None:
    result = CliRunner().invoke(app, ["serve", "--policy", str(checkpoint), "--port", str(server.port)])
    assert result.exit_code == 2
    assert f"error: Cannot listen on 127.0.0.1:{server.port}" in result.output


def test_eval_without_a_server_is_a_one_line_error(tmp_path) -> None:
    args = ["eval", "--policy", "ws://127.0.0.1:9", "--suite", "spatial", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith("error: No policy server answers at ws://127.0.0.1:9")


def test_sigterm_closes_clients_and_exits_cleanly(checkpoint, tmp_path) -> None:
    process = ServerProcess(checkpoint, "--max-batch", "1", log=tmp_path / "server.log").start()
    try:
        client = PolicyClient(process.uri)
        client.infer(observation(0))
    finally:
        status = process.stop()
    assert status == 0, process.output()
    assert "server stopped: 1 requests in 1 model calls, 0 refused" in process.output()
    with pytest.raises(ServerError, match="closed the connection"):
        client.infer(observation(0))
