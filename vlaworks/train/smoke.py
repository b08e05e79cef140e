"""A tiny trainable policy and synthetic data, for trainer smoke tests and benchmarks.

``TinyPolicy`` follows the policy contract (``forward(batch) -> (loss, metrics)``) with
the parts the trainer must handle: a frozen stem, an embedding, a norm, dropout (so
exact resume must restore the RNG), an action head for robot batches and a text head
for vision-language batches (unused parameters under co-training). The datasets are
deterministic per index and add per-sample random noise from the global RNG, which the
sampler's per-sample seeding makes reproducible.

Command line (also the 2-process CPU checks)::

    torchrun --standalone --nproc_per_node 2 -m vlaworks.train.smoke --out RUN --steps 3 --cotrain
    torchrun --standalone --nproc_per_node 2 -m vlaworks.train.smoke --out RUN --vla --distributed fsdp

``--vla`` trains a real :class:`~vlaworks.models.policy.VLAPolicy` on a tiny random-init
prismatic backbone instead (FSDP needs transformers decoder layers to shard); its
checkpoints are policy folders that ``load_policy`` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from vlaworks.batch import Batch

TASKS = ("pick the red cube", "open the drawer", "push the bowl left", "stack the blocks")


def _text_id(text: str, vocab: int) -> int:
    """Stable (unsalted) hash of a string into ``[0, vocab)``."""
    return sum(text.encode()) % vocab


class SyntheticWindows(Dataset):
    """Robot windows: image ``[V, 3, H, W]`` uint8, instruction, action chunk ``[T, 7]``."""

    def __init__(self, n: int = 64, *, views: int = 1, size: int = 16, chunk: int = 4) -> None:
        self.n, self.views, self.size, self.chunk = n, views, size, chunk

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(f"SyntheticWindows index {i} out of range [0, {self.n}).")
        g = torch.Generator().manual_seed(i)
        image = torch.randint(0, 256, (self.views, 3, self.size, self.size), generator=g, dtype=torch.uint8)
        task = i % len(TASKS)
        colour = image.float().mean(dim=(0, 2, 3)) / 255.0
        base = torch.cat([colour, torch.tensor([task / len(TASKS), 0.5, -0.5, 1.0])])
        steps = torch.linspace(0.0, 1.0, self.chunk)[:, None]
        actions = torch.tanh(2.0 * base[None, :] * (1.0 + steps))
        actions = actions + 0.01 * torch.randn(actions.shape)  # "augmentation": uses the global RNG
        return {"image": image, "instruction": TASKS[task], "actions": actions, "state": colour}


def collate_windows(items: list[dict]) -> Batch:
    """Stack :class:`SyntheticWindows` items into a :class:`Batch`."""
    return Batch(
        images=torch.stack([x["image"] for x in items]),
        instructions=[x["instruction"] for x in items],
        camera_names=tuple(f"cam{v}" for v in range(items[0]["image"].shape[0])),
        state=torch.stack([x["state"] for x in items]),
        actions=torch.stack([x["actions"] for x in items]).float(),
    )


class SyntheticVL(Dataset):
    """Vision-language samples: image, prompt and answer text (no actions)."""

    def __init__(self, n: int = 32, *, size: int = 16) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(f"SyntheticVL index {i} out of range [0, {self.n}).")
        g = torch.Generator().manual_seed(10_000 + i)
        image = torch.randint(0, 256, (1, 3, self.size, self.size), generator=g, dtype=torch.uint8)
        return {"image": image, "prompt": "how many objects?", "answer": "object " * (1 + i % 5)}


def collate_vl(items: list[dict]) -> Batch:
    """Stack :class:`SyntheticVL` items into a vision-language :class:`Batch`."""
    return Batch(
        images=torch.stack([x["image"] for x in items]),
        instructions=[x["prompt"] for x in items],
        vl_prompt=[x["prompt"] for x in items],
        vl_answer=[x["answer"] for x in items],
    )


class TinyPolicy(nn.Module):
    """Pooled pixels -> frozen stem -> (+ instruction embedding) -> LN -> dropout -> heads."""

    def __init__(self, *, views: int = 1, chunk: int = 4, hidden: int = 32, vocab: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.chunk, self.vocab = chunk, vocab
        self.stem = nn.Linear(views * 3 * 16, hidden)
        self.stem.requires_grad_(False)
        self.text = nn.Embedding(vocab, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.mlp = nn.Linear(hidden, hidden)
        self.action_head = nn.Linear(hidden, chunk * 7)
        self.vl_head = nn.Linear(hidden, 1)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch.images.float() / 255.0
        b, v = x.shape[:2]
        pooled = F.adaptive_avg_pool2d(x.flatten(0, 1), 4).reshape(b, -1)
        ids = torch.tensor([_text_id(t, self.vocab) for t in batch.instructions], device=x.device)
        h = self.drop(torch.relu(self.mlp(self.norm(self.stem(pooled) + self.text(ids)))))
        if batch.is_vl:
            target = torch.tensor([len(a.split()) / 5.0 for a in batch.vl_answer], device=x.device)
            loss = F.mse_loss(self.vl_head(h).squeeze(-1), target)
            return loss, {"vl_loss": loss.item()}
        pred = self.action_head(h).reshape(b, self.chunk, 7)
        err = (pred - batch.actions).abs().mean(-1)
        mask = batch.action_mask.float()
        loss = (err * mask).sum() / mask.sum().clamp(min=1.0)
        return loss, {"l1": loss.item()}


def tiny_vla_policy() -> nn.Module:
    """A seeded VLAPolicy on ``prismatic-tiny`` (one 32 px camera ``cam0``, chunk 4) with
    7-D action and 3-D state statistics, for :class:`SyntheticWindows` ``(size=32)``."""
    from vlaworks.data.normalize import Normalizer
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.policy import build_policy

    stats = {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [-1.0] * 7, "max": [1.0] * 7},
             "observation.state": {"q01": [0.0] * 3, "q99": [1.0] * 3, "min": [0.0] * 3, "max": [1.0] * 3}}
    config = PolicyConfig(backbone="prismatic-tiny", backbone_options={"image_size": 32},
                          head=PartSpec("query_mlp", {"mlp_width": 16}), chunk_size=4, image_size=32,
                          cameras=("cam0",))
    torch.manual_seed(0)
    return build_policy(config, Normalizer(stats, mode="q99"))


def main() -> None:
    """Train TinyPolicy on synthetic windows; with ``--dump-params`` every rank writes its
    final parameters to ``OUT/params-rank{r}.safetensors`` (to check DDP sync)."""
    from vlaworks.train.config import TrainConfig
    from vlaworks.train.sampler import MixedBatchSource
    from vlaworks.train.trainer import train

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--save-every", type=int, default=0)
    parser.add_argument("--cotrain", action="store_true", help="50/50 robot and VL batches.")
    parser.add_argument("--dump-params", action="store_true")
    parser.add_argument("--distributed", choices=("ddp", "fsdp"), default="ddp")
    parser.add_argument("--vla", action="store_true", help="Train tiny_vla_policy() instead of TinyPolicy.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size,
                      lr=1e-3 if args.vla else 1e-2, grad_accum=args.grad_accum, save_every=args.save_every,
                      log_every=1, progress=False, distributed=args.distributed,
                      find_unused_parameters=True)  # each batch kind leaves the other head unused
    model = tiny_vla_policy() if args.vla else TinyPolicy()
    if args.vla:
        from vlaworks.models.checkpoint import write_policy_files

        result = train(model, SyntheticWindows(64, size=32), collate_windows, cfg,
                       extra_save=lambda path: write_policy_files(model, path))  # type: ignore[arg-type]
    elif args.cotrain:
        source = MixedBatchSource(
            {"robot": (SyntheticWindows(64), collate_windows), "vl": (SyntheticVL(32), collate_vl)},
            batch_size=args.batch_size, seed=cfg.seed,
        )
        result = train(model, source, None, cfg)
    else:
        result = train(model, SyntheticWindows(64), collate_windows, cfg)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    # one write per line so the ranks' reports do not interleave on a shared pipe
    losses = ",".join(f"{x:.6f}" for x in result.losses)
    sys.stdout.write(f"rank {rank}/{world} done: steps={result.steps} final_loss={result.final_loss:.6f} "
                     f"losses={losses}\n")
    sys.stdout.flush()
    if args.dump_params:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(args.out / f"params-rank{rank}.safetensors"))


if __name__ == "__main__":
    main()
