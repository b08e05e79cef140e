"""A tiny real policy checkpoint (prismatic-tiny, reads the state) and a server process
serving it on a free port of 127.0.0.1, shared by the server tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from served import CAMERAS, STATE_DIM

from vlaworks.serve.process import ServerProcess


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from vlaworks.data.normalize import Normalizer
    from vlaworks.models.checkpoint import save_policy
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.policy import build_policy

    bounds = {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [-1.0] * 7, "max": [1.0] * 7}
    config = PolicyConfig(
        backbone="prismatic-tiny",
        head=PartSpec("query_mlp", {"mlp_width": 16}),
        token_sources=[PartSpec("proprio")],
        chunk_size=4,
        image_size=32,
        cameras=CAMERAS,
        use_state=True,
        state_dim=STATE_DIM,
    )
    torch.manual_seed(0)
    policy = build_policy(config, normalizer=Normalizer({"action": bounds, "observation.state": bounds}))
    return save_policy(policy, tmp_path_factory.mktemp("served") / "policy")


@pytest.fixture(scope="session")
def server(checkpoint, tmp_path_factory):
    """``vlaworks serve`` on the checkpoint (batching on, 1 MiB frames); SIGTERM afterwards."""
    log = tmp_path_factory.mktemp("log") / "server.log"
    with ServerProcess(checkpoint, "--max-message-mb", "1", log=log) as process:
        yield process

