"""Policy server latency and throughput vs concurrent clients, with and without batching.

Usage: ``.venv/bin/python bench/bench_serve.py [--policy RUN_OR_POLICY] [--clients 1,2,4,8]
[--requests 20] [--rounds 3]``. Without ``--policy`` it serves the demo's policy at its
defaults (``factories.demo_policy``: VLM4VLA + proprio on prismatic-tiny, base + wrist at
64 px, chunk 8; untrained weights cost the same compute). Two ``vlaworks serve`` processes
run on 127.0.0.1, ``--max-batch 8`` and ``--max-batch 1``, and the settings are measured
interleaved over several rounds, so a load change on a shared machine hits both alike;
each client is a thread with its own connection that sends its next observation as soon
as it has the reply (a robot that waits for each chunk). Latency is measured at the client
(send to reply decoded); throughput is replies per second over all clients (median over rounds); the server's
own ``server_timing`` gives the mean batch and the median model time per call (why
batching pays: a batch of 8 costs far less than 8 calls). Prints a markdown table and the
load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlaworks.serve.client import PolicyClient
from vlaworks.serve.process import ServerProcess


def demo_checkpoint() -> Path:
    """The demo policy (untrained) saved into a temp folder."""
    from factories import demo_policy

    from vlaworks.models.checkpoint import save_policy

    policy, _, _ = demo_policy(batch_size=1)
    return save_policy(policy, Path(tempfile.mkdtemp(prefix="vlaworks-bench-serve-")) / "policy")


def observations(meta: dict, n: int, size: int, seed: int) -> list[dict]:
    """``n`` random observations in the layout the server's metadata asks for."""
    rng = np.random.default_rng(seed)
    return [
        {
            "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in meta["cameras"]},
            "instruction": "pick up the red cube",
            "state": rng.uniform(-1, 1, meta["state_dim"] or 1).astype(np.float32),
        }
        for _ in range(n)
    ]


@dataclass
class Samples:
    """What the clients saw in one setting, accumulated over rounds."""

    latency_ms: list[float] = field(default_factory=list)
    batch: list[int] = field(default_factory=list)
    infer_ms: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)

    def row(self) -> str:
        p50, p90, p99 = np.percentile(self.latency_ms, [50, 90, 99])
        return (
            f"{p50:.1f} | {p90:.1f} | {p99:.1f} | {np.median(self.throughput):.1f} "
            f"| {np.mean(self.batch):.2f} | {np.median(self.infer_ms):.1f}"
        )


def drive(uri: str, clients: int, requests: int, size: int, samples: Samples) -> None:
    """``clients`` threads x ``requests`` closed-loop requests; adds what they saw to ``samples``."""
    connections = [PolicyClient(uri) for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    replies: list[list[tuple[float, dict]]] = [[] for _ in range(clients)]

    def run(i: int) -> None:
        client = connections[i]
        obs = observations(client.metadata, requests + 2, size, seed=i)
        for o in obs[:2]:  # warm-up, untimed
            client.infer(o)
        start.wait()
        for o in obs[2:]:
            t0 = time.perf_counter()
            reply = client.infer(o)
            replies[i].append((1000 * (time.perf_counter() - t0), reply["server_timing"]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for client in connections:
        client.close()
    for latency, timing in (r for rs in replies for r in rs):
        samples.latency_ms.append(latency)
        samples.batch.append(timing["batch_size"])
        samples.infer_ms.append(timing["infer_ms"])
    samples.throughput.append(clients * requests / wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, help="Run or policy folder (default: the demo policy).")
    parser.add_argument("--clients", default="1,2,4,8", help="Comma list of concurrent clients.")
    parser.add_argument("--requests", type=int, default=20, help="Timed requests per client per round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds over all settings, interleaved.")
    parser.add_argument("--image-size", type=int, default=64, help="Camera images sent, in pixels.")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    policy = args.policy or demo_checkpoint()
    modes = {"batching (max 8)": "8", "no batching": "1"}

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()}")
    print(f"policy: {policy}; {args.rounds} rounds x {args.requests} requests per client, "
          f"{args.image_size} px images\n")
    samples = {(mode, n): Samples() for mode in modes for n in counts}
    with ExitStack() as stack:
        servers = {
            mode: stack.enter_context(ServerProcess(policy, "--max-batch", max_batch, "--device", "cpu"))
            for mode, max_batch in modes.items()
        }
        for _ in range(args.rounds):
            for n in counts:
                for mode, server in servers.items():
                    drive(server.uri, n, args.requests, args.image_size, samples[mode, n])
    print("| server | clients | p50 ms | p90 ms | p99 ms | requests/s | mean batch | model ms per call |")
    print("|---|---|---|---|---|---|---|---|")
    for (mode, n), seen in samples.items():
        print(f"| {mode} | {n} | {seen.row()} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
