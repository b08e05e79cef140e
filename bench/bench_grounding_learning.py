"""How fast can a model learn to point at a named object in the miniature world?

Trains one model from scratch on rendered grounding questions of chosen kinds (default
``point``: "Point to the white cube." -> ``(0.86, 0.38)``, from
:func:`vlaworks.sim.vl_data.generate_vl_samples`, the pretraining scene stream) and scores it on
held-out questions of those kinds (:func:`vlaworks.eval.grounding.grounding_items`, their own
scene stream), as ``vlaworks pretrain``'s grounding benchmark does:

* ``--model vlm``: ``prismatic-tiny`` on the demo's architecture (64 px, 8 px patches merged
  2 x 2, eager attention), next-token prediction of the answers through the library's trainer
  (one question kind per batch, as ``vlaworks pretrain``), answers decoded greedily;
  ``--vision efficientnet`` swaps the random-init towers for the ImageNet EfficientNet-lite0,
  ``--token-merge 1`` reads every patch, ``--prompt-scheme prefix`` lets the image tokens read
  the question (one bidirectional prefix); ``--answer-format loc`` writes every point as
  PaliGemma-style location tokens (``<loc0055><loc0024>``: one added token per coordinate, the
  bin of a 64-bin grid, decoded back to the bin centre before scoring) instead of the
  digit-by-digit text ``(0.86, 0.38)`` (12 tokens).
* ``--model cnn`` / ``cnn-film``: the reference a VLM should match, regressing the point
  directly: ``bc-cnn``'s conv encoder (spatial-softmax keypoints and mean pooling) and a learned
  embedding per question string, fused by a 2 x 256 MLP (``cnn``), or with the question also
  scaling and shifting the conv features (FiLM, ``cnn-film``); L1, AdamW, one-cycle lr.
  Pointing kinds only.

Prints the training time and the hits per kind with 95 % Wilson intervals (the grounding table).
``--eval-every N`` (VLM) also scores the weights at every N-th step of the one schedule, a
learning curve printed as it goes and, with ``--curve FILE``, appended to FILE as JSON lines.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 .venv/bin/python bench/bench_grounding_learning.py --model vlm \
        --steps 3000 --samples 8000 [--vision efficientnet] [--kinds point,spatial] [--lr 1e-3]
    MUJOCO_GL=egl OMP_NUM_THREADS=1 .venv/bin/python bench/bench_grounding_learning.py --model cnn-film \
        --steps 3000 --samples 8000
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.eval.grounding import grounding_counts, grounding_items, grounding_table, point_in_region
from vlaworks.eval.vqa import parse_numbers
from vlaworks.miniature import MINIATURE, pretrain_vl_seed
from vlaworks.sim.vl_data import generate_vl_samples

POINT_KINDS = ("point", "free_space", "affordance")
#: ``--answer-format loc``: location tokens per image axis (one per pixel column / row at 64 px)
LOC_BINS = 64
_LOC = re.compile(r"<loc(\d{4})>")


def loc_tokens() -> list[str]:
    """The added location tokens, ``<loc0000>`` ... ``<loc0063>`` (PaliGemma's spelling)."""
    return [f"<loc{i:04d}>" for i in range(LOC_BINS)]


def to_loc_answer(answer: str) -> str:
    """``"(0.86, 0.38)"`` -> ``"<loc0055><loc0024>"``: each coordinate as the token of its bin."""
    tokens = [f"<loc{min(int(v * LOC_BINS), LOC_BINS - 1):04d}>" for v in parse_numbers(answer)]
    return "".join(tokens) if tokens else answer


def from_loc_answer(text: str) -> str:
    """The inverse up to binning: every location token -> its bin centre, as ``"(x, y)"`` text."""
    values = [(int(i) + 0.5) / LOC_BINS for i in _LOC.findall(text)]
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")" if values else text


def add_loc_tokens(backbone: nn.Module) -> None:
    """Add :func:`loc_tokens` to the backbone's tokenizer and its LM's (tied) embeddings."""
    backbone.tokenizer.add_tokens(loc_tokens())
    backbone.llm.resize_token_embeddings(len(backbone.tokenizer))


def train_vlm(
    samples: list[dict], args: argparse.Namespace, out: Path, items: list
) -> tuple[nn.Module, dict[int, dict]]:
    """``prismatic-tiny`` trained on the samples' answers as ``vlaworks pretrain`` trains (its
    backbone options, kind-grouped batches and trainer overrides, fp32); returns its backbone and
    its counts on ``items`` per scored step: with ``args.eval_every`` the weights are scored at
    each checkpoint (every ``eval_every`` steps, and the last), as :func:`report_curve` writes."""
    from accelerate.utils import set_seed

    from vlaworks.data.vl import VLDataset
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.policy import build_policy
    from vlaworks.train.config import TrainConfig
    from vlaworks.train.pretrain import PretrainSettings, _backbone_options, _batch_source
    from vlaworks.train.trainer import train

    settings = PretrainSettings(
        samples=args.samples, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        mixed_precision="no", seed=args.seed,
        **({"token_merge": args.token_merge} if args.token_merge else {}),
    )
    options = _backbone_options(settings) | ({"vision": args.vision} if args.vision else {})
    options |= {"prompt_scheme": args.prompt_scheme} if args.prompt_scheme else {}
    config = PolicyConfig(
        backbone=settings.backbone, head=PartSpec("token", {"tokenizer": "bins", "n_bins": 256}),
        chunk_size=1, backbone_options=options, cameras=settings.cameras, image_size=settings.image_size,
        use_state=False,
    )
    set_seed(args.seed)
    policy = build_policy(config)
    if args.answer_format == "loc":
        add_loc_tokens(policy.backbone)
    vl = VLDataset.from_samples(samples, cameras=settings.cameras, image_size=settings.image_size)
    overrides = settings.budget.train_overrides(args.seed)
    start = time.perf_counter()
    scored: dict[int, dict] = {}

    def score(checkpoint: Path) -> None:  # the checkpoint's weights are the policy's own
        step = int(checkpoint.name.rsplit("-", 1)[1])
        scored[step] = grounding_counts(policy.backbone, items, postprocess=answer_decoder(args))
        report_curve(args, step, time.perf_counter() - start, scored[step])

    if args.eval_every:
        overrides |= {"save_every": args.eval_every, "keep_last": 1}
    cfg = TrainConfig(out_dir=out, **overrides)
    train(policy, _batch_source(vl, settings), None, cfg, resume=False,
          extra_save=score if args.eval_every else None)
    return policy.backbone.eval(), scored


def answer_decoder(args: argparse.Namespace) -> Callable[[str], str] | None:
    """What turns a decoded answer into the text the benchmark scores (location tokens to points)."""
    return from_loc_answer if args.answer_format == "loc" else None


def report_curve(args: argparse.Namespace, step: int, seconds: float, counts: dict) -> None:
    """Print one point of the learning curve; append it to ``args.curve`` when given."""
    rates = ", ".join(f"{kind} {hits}/{n}" for kind, (hits, n) in counts.items())
    print(f"step {step}: {rates} ({seconds / 60:.1f} min)", flush=True)
    if args.curve:
        point = {"step": step, "minutes": round(seconds / 60, 2), "counts": counts, "label": args.label}
        with open(args.curve, "a") as f:
            f.write(json.dumps(point) + "\n")


class PointCNN(nn.Module):
    """``bc-cnn``'s conv encoder + a question embedding -> a point; ``film``: the question also
    modulates the conv features before the keypoints."""

    def __init__(self, n_questions: int, film: bool) -> None:
        from vlaworks.models.backbones.families.cnn import ConvEncoder

        super().__init__()
        self.encoder = ConvEncoder()
        self.question = nn.Embedding(n_questions + 1, 64)  # the last row: a question not seen in training
        self.film = nn.Linear(64, 2 * 64) if film else None
        width = self.encoder.out_dim + 64
        self.mlp = nn.Sequential(
            nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2)
        )

    def forward(self, images: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        q = self.question(questions)
        x = self.encoder.net(images.float() / 127.5 - 1.0)
        if self.film is not None:
            scale, shift = self.film(q).chunk(2, dim=-1)
            x = x * (1 + scale[..., None, None]) + shift[..., None, None]
        features = torch.cat([self.encoder.keypoints(x), x.mean(dim=(2, 3))], dim=-1)
        return self.mlp(torch.cat([features, q], dim=-1))


def train_cnn(samples: list[dict], args: argparse.Namespace) -> tuple[PointCNN, dict[str, int]]:
    """A :class:`PointCNN` regressing each sample's point (L1); returns it and its question index."""
    torch.manual_seed(args.seed)
    questions = {p: i for i, p in enumerate(sorted({s["prompt"] for s in samples}))}
    images = torch.from_numpy(np.stack([s["image"] for s in samples])).permute(0, 3, 1, 2).contiguous()
    asked = torch.tensor([questions[s["prompt"]] for s in samples])
    points = torch.tensor([parse_numbers(s["answer"])[:2] for s in samples], dtype=torch.float32)
    model = PointCNN(len(questions), film=args.model == "cnn-film")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps)
    for _ in range(args.steps):
        batch = torch.randint(0, len(samples), (args.batch_size,))
        loss = F.l1_loss(model(images[batch], asked[batch]), points[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return model.eval(), questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("vlm", "cnn", "cnn-film"), default="vlm")
    parser.add_argument("--vision", choices=("dinosiglip", "efficientnet"), default=None)
    parser.add_argument("--prompt-scheme", default=None, help="vlm: prompt scheme, e.g. prefix")
    parser.add_argument("--kinds", default="point", help="comma list of grounding kinds")
    parser.add_argument("--token-merge", type=int, default=None,
                        help="vlm: image-token merge (default: the demo's 2)")
    parser.add_argument("--answer-format", choices=("text", "loc"), default="text",
                        help="vlm: points as digits (text) or as location tokens (loc)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: 5e-4 (vlm), 1e-3 (cnn)")
    parser.add_argument("--questions", type=int, default=200, help="held-out questions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=0, help="vlm: score every N steps (0: at the end)")
    parser.add_argument("--curve", default=None, help="append the learning curve to this JSON-lines file")
    parser.add_argument("--label", default="", help="a name for this run in --curve")
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    if args.eval_every and args.model != "vlm":
        parser.error("--eval-every scores the VLM's checkpoints: use it with --model vlm.")
    if args.model != "vlm" and set(kinds) - set(POINT_KINDS):
        parser.error(f"--model {args.model} regresses points: use kinds among {', '.join(POINT_KINDS)}.")
    if args.answer_format == "loc" and (args.model != "vlm" or set(kinds) - set(POINT_KINDS)):
        parser.error(f"--answer-format loc needs --model vlm and kinds among {', '.join(POINT_KINDS)}.")
    args.lr = args.lr if args.lr is not None else (5e-4 if args.model == "vlm" else 1e-3)
    size = MINIATURE.image_size
    samples = list(generate_vl_samples(args.samples, pretrain_vl_seed(args.seed), size, kinds=kinds))
    items = grounding_items(args.questions, image_size=size, kinds=kinds)
    if args.answer_format == "loc":
        for sample in samples:
            sample["answer"] = to_loc_answer(sample["answer"])
    start = time.perf_counter()
    if args.model == "vlm":
        with tempfile.TemporaryDirectory() as tmp:
            backbone, scored = train_vlm(samples, args, Path(tmp), items)
        seconds = time.perf_counter() - start
        counts = scored.get(args.steps) or grounding_counts(backbone, items, postprocess=answer_decoder(args))
    else:
        model, questions = train_cnn(samples, args)
        seconds = time.perf_counter() - start
        images = torch.from_numpy(np.stack([it.image for it in items])).permute(0, 3, 1, 2)
        asked = torch.tensor([questions.get(it.prompt, len(questions)) for it in items])
        with torch.no_grad():
            predicted = model(images, asked).numpy()
        hits: dict[str, list[bool]] = {}
        for point, it in zip(predicted, items, strict=True):
            hits.setdefault(it.kind, []).append(point_in_region(point, it.region))
        counts = {kind: (sum(v), len(v)) for kind, v in sorted(hits.items())}
    name = args.model + (f" ({args.vision})" if args.vision else "")
    print(f"{name}: {args.steps} steps x {args.batch_size}, {args.samples} samples, lr {args.lr:g}; "
          f"trained in {seconds / 60:.1f} min")
    print(grounding_table({name: counts}), end="")


if __name__ == "__main__":
    main()
