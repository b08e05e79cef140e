"""Policy server latency and throughput vs concurrent clients, with and without batching.

Usage: ``.venv/bin/python bench/bench_serve.py [--policy RUN_OR_POLICY] [--clients 1,2,4,8]
[--requests 40]``. Without ``--policy`` it serves the demo's policy at its defaults
(``factories.demo_policy``: VLM4VLA + proprio on prismatic-tiny, base + wrist at 64 px,
chunk 8; untrained weights cost the same compute). For each setting a fresh
``vlaworks serve`` process runs on 127.0.0.1 (``--max-batch 8`` vs ``--max-batch 1``);
each client is a thread with its own connection that sends its next observation as soon
as it has the reply (a robot that waits for each chunk). Latency is measured at the client
(send to reply decoded); throughput is replies per second over all clients; the server's
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


def drive(uri: str, clients: int, requests: int, size: int) -> dict[str, float]:
    """``clients`` threads x ``requests`` closed-loop requests: latency percentiles, throughput,
    mean batch size and median model milliseconds per call (from ``server_timing``)."""
    connections = [PolicyClient(uri) for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    batches: list[list[int]] = [[] for _ in range(clients)]
    infer: list[list[float]] = [[] for _ in range(clients)]

    def run(i: int) -> None:
        client = connections[i]
        obs = observations(client.metadata, requests + 2, size, seed=i)
        for o in obs[:2]:  # warm-up, untimed
            client.infer(o)
        start.wait()
        for o in obs[2:]:
            t0 = time.perf_counter()
            reply = client.infer(o)
            latencies[i].append(1000 * (time.perf_counter() - t0))
            batches[i].append(reply["server_timing"]["batch_size"])
            infer[i].append(reply["server_timing"]["infer_ms"])

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
    flat = np.concatenate(latencies)
    p50, p90, p99 = np.percentile(flat, [50, 90, 99])
    return {
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "throughput": len(flat) / wall,
        "batch": float(np.mean(np.concatenate(batches))),
        "infer": float(np.median(np.concatenate(infer))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, help="Run or policy folder (default: the demo policy).")
    parser.add_argument("--clients", default="1,2,4,8", help="Comma list of concurrent clients.")
    parser.add_argument("--requests", type=int, default=40, help="Timed requests per client.")
    parser.add_argument("--image-size", type=int, default=64, help="Camera images sent, in pixels.")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    policy = args.policy or demo_checkpoint()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()}")
    print(f"policy: {policy}; {args.requests} requests per client, {args.image_size} px images\n")
    print("| server | clients | p50 ms | p90 ms | p99 ms | requests/s | mean batch | model ms per call |")
    print("|---|---|---|---|---|---|---|---|")
    for max_batch in (8, 1):
        label = "batching (max 8)" if max_batch > 1 else "no batching"
        with ServerProcess(policy, "--max-batch", str(max_batch), "--device", "cpu") as server:
            for clients in counts:
                r = drive(server.uri, clients, args.requests, args.image_size)
                print(
                    f"| {label} | {clients} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} "
                    f"| {r['throughput']:.1f} | {r['batch']:.2f} | {r['infer']:.1f} |",
                    flush=True,
                )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
