"""Serve a trained LeRobot peer (ACT or Diffusion Policy) to vlaworks' evaluator over websocket.

Runs in the peers venv with the repository on ``PYTHONPATH`` (it imports only
``vlaworks.serve``'s server, which needs numpy, msgpack and websockets, never torch from
vlaworks' side). The LeRobot policy is wrapped as a :class:`~vlaworks.policy_api.ChunkPolicy`
and put behind vlaworks' own :class:`~vlaworks.serve.server.PolicyServer`, so the wire format,
metadata and request checks are exactly ``vlaworks serve``'s; ``vlaworks eval --policy
ws://HOST:PORT`` then evaluates it on the same seeded episodes as any vlaworks policy.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv-peers/bin/python bench/peers/serve_peer.py \\
        --checkpoint runs/peers/act/lerobot/checkpoints/last/pretrained_model --port 8765

What the wrapped policy sees is what LeRobot's trainer fed it: each camera as float
``[B, 3, H, W]`` in [0, 1] (LeRobot's reader decodes video frames to that; the env sends
uint8 ``[H, W, 3]``), the proprio state as float ``[B, 7]``, both through the checkpoint's own
preprocessor (its normaliser, with the training run's statistics), and the predicted chunk
through its postprocessor (un-normalised to env units: the 7-D actions the dataset stores).
ACT returns its whole chunk (``chunk_size`` actions); Diffusion Policy returns the
``n_action_steps`` actions it would execute, sampled from the current observation.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
from lerobot.utils.constants import OBS_IMAGES, OBS_STATE

from vlaworks.serve.server import PolicyServer, ServerOptions
from vlaworks.serve.spec import ServingSpec

CAMERA_PREFIX = "observation.images."


class LeRobotChunkPolicy:
    """A LeRobot ACT or Diffusion policy as a vlaworks ``ChunkPolicy`` (env observations in,
    ``float32 [B, chunk, 7]`` env actions out)."""

    def __init__(self, checkpoint: Path, num_inference_steps: int | None = None) -> None:
        config = PreTrainedConfig.from_pretrained(checkpoint)
        config.device = "cpu"
        self.policy = get_policy_class(config.type).from_pretrained(checkpoint, config=config)
        self.policy.eval()
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            config, pretrained_path=str(checkpoint)
        )
        self.camera_keys = list(config.image_features)
        self.cameras = tuple(key.removeprefix(CAMERA_PREFIX) for key in self.camera_keys)
        self.state_dim = int(config.robot_state_feature.shape[0])
        self.action_dim = int(config.action_feature.shape[0])
        if isinstance(self.policy, ACTPolicy):
            self.chunk_size = int(config.chunk_size)
        elif isinstance(self.policy, DiffusionPolicy):
            if config.n_obs_steps != 1:
                raise SystemExit(
                    f"{checkpoint} uses n_obs_steps={config.n_obs_steps}; this stateless server feeds one "
                    "observation, so train Diffusion Policy with --policy.n_obs_steps=1."
                )
            if num_inference_steps is not None:
                self.policy.diffusion.num_inference_steps = num_inference_steps
            self.chunk_size = int(config.n_action_steps)
        else:
            raise SystemExit(
                f"{checkpoint} holds a {config.type!r} policy; this bench serves act and diffusion."
            )
        self.image_size = int(config.image_features[self.camera_keys[0]].shape[-1])
        self.calls = 0
        self.infer_s = 0.0

    def reset(self) -> None:
        """Nothing to clear: every call predicts from the given observations alone."""

    @torch.no_grad()
    def predict_chunk(self, observations: list[dict[str, Any]]) -> np.ndarray:
        """``float32 [B, chunk_size, 7]`` env actions for a batch of env observations."""
        start = time.perf_counter()
        batch: dict[str, Any] = {
            key: torch.from_numpy(np.stack([obs["images"][camera] for obs in observations]))
            .permute(0, 3, 1, 2)
            .float()
            .div(255.0)
            for key, camera in zip(self.camera_keys, self.cameras, strict=True)
        }
        batch[OBS_STATE] = torch.from_numpy(
            np.stack([obs["state"] for obs in observations]).astype(np.float32)
        )
        batch["task"] = [obs["instruction"] for obs in observations]
        batch = self.preprocessor(batch)
        if isinstance(self.policy, ACTPolicy):
            actions = self.policy.predict_action_chunk(batch)
        else:  # Diffusion: images stacked per camera, one observation step
            model_in = {
                OBS_STATE: batch[OBS_STATE].unsqueeze(1),
                OBS_IMAGES: torch.stack([batch[key] for key in self.camera_keys], dim=1).unsqueeze(1),
            }
            actions = self.policy.diffusion.generate_actions(model_in)
        actions = self.postprocessor(actions)
        self.calls += 1
        self.infer_s += time.perf_counter() - start
        return actions.numpy().astype(np.float32)

    def spec(self) -> ServingSpec:
        """The layout the vlaworks server announces and checks (cameras, chunk, state)."""
        return ServingSpec(
            cameras=self.cameras,
            chunk_size=self.chunk_size,
            action_dim=self.action_dim,
            image_size=self.image_size,
            use_state=True,
            state_dim=self.state_dim,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="LeRobot pretrained_model folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--max-batch", type=int, default=8, help="observations batched into one call")
    parser.add_argument(
        "--num-inference-steps", type=int, help="Diffusion: denoising steps (default: trained)"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    policy = LeRobotChunkPolicy(args.checkpoint, args.num_inference_steps)
    options = ServerOptions(host=args.host, port=args.port, max_batch=args.max_batch)
    server = PolicyServer(policy, policy.spec(), options, label=f"lerobot:{args.checkpoint}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.run(stop, on_ready=lambda port: print(f"serving on ws://{args.host}:{port}", flush=True))

    asyncio.run(serve())
    per_call = 1000 * policy.infer_s / max(policy.calls, 1)
    batcher = server.batcher
    print(
        f"server stopped: {batcher.requests} observations in {policy.calls} model calls, "
        f"{per_call:.1f} ms per call (preprocess + model + postprocess), {server.errors} refused",
        flush=True,
    )


if __name__ == "__main__":
    main()
