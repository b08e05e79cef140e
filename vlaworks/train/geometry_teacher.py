"""Train the miniature world's geometry teacher once (``vlaworks geometry-teacher``).

PokeVLA distils a frozen 3-D foundation model (VGGT) into the VLA's vision tokens; the
miniature world has no such model, but it has ground truth: every render can emit metric
depth and its camera matrices, hence each pixel's world point. This module renders frames
of the scripted expert at work in all four suites (half of the episodes under one random
perturbation family: camera, lighting, background, layout, noise or robot start, at a
random severity), trains a :class:`~vlaworks.models.geometry.teacher.GeometryNet` to
regress log-depth and world points of the base and wrist views, and measures it on
held-out episodes:

* depth: abs-rel ``mean |d' - d| / d``, RMSE (m), ``delta < 1.25`` (share of pixels with
  ``max(d'/d, d/d') < 1.25``), per view, over all pixels and over the foreground (objects
  and gripper, from the world's segmentation), against the per-pixel mean depth of the
  training frames (what a net that ignores the image reaches: the fixed base camera sees
  mostly a static table, so the foreground is where geometry must be read from the image);
* points: mean Euclidean error of the world points (cm).

Reset seeds come from :func:`vlaworks.miniature.teacher_seed`, a block of their own. The
result is a teacher folder (``geometry_teacher.json``, ``model.safetensors``) plus
``report.json`` / ``report.md``. :func:`cached_teacher` keeps one teacher per settings
(their hash names the folder) under ``$VLAWORKS_CACHE`` (default ``~/.cache/vlaworks``),
training it on first use under a file lock, so parallel runs train it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlaworks.miniature import teacher_seed
from vlaworks.models.geometry.teacher import BUILTIN_TEACHER, TEACHER_FILE, GeometryNet, GeometryNetConfig

log = logging.getLogger(__name__)

CAMERAS = ("base", "wrist")
#: the families a perturbed teacher episode draws one of (language changes no pixel)
TEACHER_PERTURBATIONS = ("camera", "lighting", "background", "layout", "noise", "robot_init")
#: the teacher data's own random stream (perturbation draws), apart from every other stream
TEACHER_STREAM = 313131
#: bumped when the teacher's data, net or training change, so cached teachers are retrained
FORMAT = 1


@dataclass(frozen=True)
class TeacherSettings:
    """What the teacher is trained on and how (the cache key of :func:`cached_teacher`)."""

    suites: tuple[str, ...] = ("spatial", "object", "goal", "long")
    #: training episodes per suite
    episodes: int = 12
    #: held-out episodes per suite (the accuracy report)
    heldout: int = 3
    #: keep every ``stride``-th frame of an episode
    stride: int = 3
    #: at most this many steps per episode
    max_steps: int = 150
    #: the scripted expert's action noise (wider arm poses than the demonstrations)
    noise: float = 0.2
    #: share of episodes under one random perturbation family
    perturbed: float = 0.5
    image_size: int = 64
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    net: GeometryNetConfig = field(default_factory=GeometryNetConfig)

    def __post_init__(self) -> None:
        if min(self.episodes, self.heldout, self.stride, self.max_steps, self.steps, self.batch_size) < 1:
            raise ValueError(f"TeacherSettings counts must be >= 1; got {self}.")
        if self.net.image_size != self.image_size:
            raise ValueError(
                f"The teacher net's image_size {self.net.image_size} must equal the frames' "
                f"{self.image_size}."
            )

    def digest(self) -> str:
        """12 hex characters naming these settings (and :data:`FORMAT`)."""
        text = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Frames:
    """Rendered views: images ``[N, V, H, W, 3]`` uint8, depth ``[N, V, H, W]`` (m),
    intrinsics ``[N, V, 3, 3]``, world-from-camera extrinsics ``[N, V, 4, 4]`` and the
    foreground (objects and gripper) ``[N, V, H, W]`` bool."""

    images: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    foreground: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def tensors(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images ``[n, V, 3, H, W]`` uint8, depth ``[n, V, H, W]`` and world points
        ``[n, V, 3, H, W]`` of frames ``index``."""
        images = torch.from_numpy(self.images[index]).permute(0, 1, 4, 2, 3)
        depth = torch.from_numpy(self.depth[index])
        cameras = torch.from_numpy(self.intrinsics[index]), torch.from_numpy(self.extrinsics[index])
        points = world_points(depth, *cameras)
        return images, depth, points


def world_points(depth: torch.Tensor, intrinsics: torch.Tensor, extrinsics: torch.Tensor) -> torch.Tensor:
    """Back-project z-depth ``[..., H, W]`` through pinhole ``intrinsics`` ``[..., 3, 3]`` (pixel
    centres at ``+0.5``) and world-from-camera ``extrinsics`` ``[..., 4, 4]`` (OpenCV axes) to
    world points ``[..., 3, H, W]``."""
    h, w = depth.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    fx, fy = intrinsics[..., 0, 0, None, None], intrinsics[..., 1, 1, None, None]
    cx, cy = intrinsics[..., 0, 2, None, None], intrinsics[..., 1, 2, None, None]
    cam = torch.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], dim=-3)
    rot, trans = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    return torch.einsum("...ij,...jhw->...ihw", rot, cam) + trans[..., :, None, None]


def render_frames(settings: TeacherSettings, *, heldout: bool) -> Frames:
    """Expert episodes of every suite (training or held-out seeds), every ``stride``-th frame."""
    from vlaworks.envs.tabletop import TabletopEnv

    rng = np.random.default_rng([settings.seed, TEACHER_STREAM, int(heldout)])
    count = settings.heldout if heldout else settings.episodes
    images, depth, intr, extr, fg = [], [], [], [], []
    for suite_index, suite in enumerate(settings.suites):
        for episode in range(count):
            perturb = []
            if rng.random() < settings.perturbed:
                family = TEACHER_PERTURBATIONS[rng.integers(len(TEACHER_PERTURBATIONS))]
                perturb = [f"{family}:{rng.uniform(0.2, 1.0):.3f}"]
            env = TabletopEnv(
                suite, image_size=settings.image_size, depth=True, segmentation=True, perturbations=perturb
            )
            try:
                obs, _ = env.reset(seed=teacher_seed(settings.seed, heldout, suite_index, episode))
                expert = env.expert(noise=settings.noise)
                expert.reset()
                for step in range(min(settings.max_steps, env.max_episode_steps)):
                    if step % settings.stride == 0:
                        mats = env.camera_matrices()
                        images.append(np.stack([obs["images"][c] for c in CAMERAS]))
                        depth.append(np.stack([obs["depth"][c] for c in CAMERAS]))
                        intr.append(np.stack([mats[c]["intrinsics"] for c in CAMERAS]))
                        extr.append(np.stack([mats[c]["extrinsics"] for c in CAMERAS]))
                        fg.append(np.stack([obs["segmentation"][c] >= 1 for c in CAMERAS]))
                    obs, _, terminated, truncated, _ = env.step(expert.act(obs))
                    if terminated or truncated:
                        break
            finally:
                env.close()
    return Frames(
        np.stack(images),
        np.stack(depth).astype(np.float32),
        np.stack(intr).astype(np.float32),
        np.stack(extr).astype(np.float32),
        np.stack(fg),
    )


def teacher_loss(
    log_depth: torch.Tensor, points: torch.Tensor, depth: torch.Tensor, target_points: torch.Tensor
) -> torch.Tensor:
    """L1 on log-depth plus the world-point error relative to depth (so far floor pixels do
    not dominate near ones)."""
    depth_term = (log_depth - depth.clamp(min=1e-3).log()).abs().mean()
    point_term = ((points - target_points).abs().sum(-3) / depth.clamp(min=1e-3)).mean()
    return depth_term + point_term


@torch.no_grad()
def evaluate(net: GeometryNet, frames: Frames, mean_depth: torch.Tensor, batch: int = 64) -> dict:
    """Per view: abs-rel, RMSE (m), delta < 1.25 of depth and world-point error (cm) over all
    pixels, abs-rel over the foreground, and both abs-rels of the training frames' per-pixel
    mean depth ``mean_depth`` ``[V, H, W]``."""
    net.eval()
    sums: dict[str, np.ndarray] = {}
    for start in range(0, len(frames), batch):
        index = np.arange(start, min(start + batch, len(frames)))
        images, depth, points = frames.tensors(index)
        fg = torch.from_numpy(frames.foreground[index]).float()
        _, log_depth, pred_points = net(images)
        pred = log_depth.exp()
        ratio = torch.maximum(pred / depth, depth / pred)
        rel, base_rel = (pred - depth).abs() / depth, (mean_depth - depth).abs() / depth
        stats = {
            "pixels": torch.ones_like(depth),
            "abs_rel": rel,
            "sq_err": (pred - depth) ** 2,
            "delta1": (ratio < 1.25).float(),
            "point_cm": (pred_points - points).norm(dim=-3) * 100,
            "baseline_abs_rel": base_rel,
            "baseline_sq_err": (mean_depth - depth) ** 2,
            "fg_pixels": fg,
            "fg_abs_rel": rel * fg,
            "fg_baseline_abs_rel": base_rel * fg,
        }
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + value.sum(dim=(0, 2, 3)).double().numpy()
    report = {}
    for index, cam in enumerate(CAMERAS):
        mean = {key: float(value[index] / sums["pixels"][index]) for key, value in sums.items()}
        fg = max(float(sums["fg_pixels"][index]), 1.0)
        report[cam] = {
            "abs_rel": mean["abs_rel"],
            "rmse_m": math.sqrt(mean["sq_err"]),
            "delta1": mean["delta1"],
            "point_error_cm": mean["point_cm"],
            "baseline_abs_rel": mean["baseline_abs_rel"],
            "baseline_rmse_m": math.sqrt(mean["baseline_sq_err"]),
            "foreground_share": mean["fg_pixels"],
            "foreground_abs_rel": float(sums["fg_abs_rel"][index]) / fg,
            "foreground_baseline_abs_rel": float(sums["fg_baseline_abs_rel"][index]) / fg,
        }
    return report


def train_teacher(settings: TeacherSettings, out: Path) -> dict:
    """Render, train and evaluate the teacher; write it and its report to ``out`` (a new or
    empty folder); return the report."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"Teacher folder {out} is not empty; name a new folder.")
    start = time.perf_counter()
    train_frames = render_frames(settings, heldout=False)
    test_frames = render_frames(settings, heldout=True)
    render_s = time.perf_counter() - start
    torch.manual_seed(settings.seed)
    net = GeometryNet(settings.net)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps, pct_start=0.05)
    rng = np.random.default_rng(settings.seed)
    net.train()
    losses = []
    for _ in range(settings.steps):
        index = rng.integers(len(train_frames), size=settings.batch_size)
        images, depth, points = train_frames.tensors(index)
        _, log_depth, pred_points = net(images)
        loss = teacher_loss(log_depth, pred_points, depth, points)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - start - render_s
    mean_depth = torch.from_numpy(train_frames.depth.mean(axis=0))
    report = {
        "settings": asdict(settings),
        "train_frames": len(train_frames),
        "heldout_frames": len(test_frames),
        "final_loss": float(np.mean(losses[-50:])),
        "render_s": round(render_s, 1),
        "train_s": round(train_s, 1),
        "heldout": evaluate(net, test_frames, mean_depth),
    }
    net.save(out)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    return report


def report_markdown(report: dict) -> str:
    """The held-out accuracy as a Markdown table."""
    lines = [
        f"Geometry teacher: {report['train_frames']} training frames, {report['heldout_frames']} held-out "
        f"frames (base + wrist each); render {report['render_s']} s, train {report['train_s']} s.",
        "",
        "| view | depth abs-rel | RMSE (m) | delta < 1.25 | point error (cm) | foreground abs-rel "
        "| mean-depth abs-rel / RMSE (m) / foreground abs-rel |",
        "|---|---|---|---|---|---|---|",
    ]
    for cam, m in report["heldout"].items():
        lines.append(
            f"| {cam} | {m['abs_rel']:.3f} | {m['rmse_m']:.3f} | {m['delta1']:.3f} "
            f"| {m['point_error_cm']:.1f} "
            f"| {m['foreground_abs_rel']:.3f} ({m['foreground_share']:.0%} of pixels) "
            f"| {m['baseline_abs_rel']:.3f} / {m['baseline_rmse_m']:.3f} "
            f"/ {m['foreground_baseline_abs_rel']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def cache_root() -> Path:
    """``$VLAWORKS_CACHE``, else ``~/.cache/vlaworks``."""
    return Path(os.environ.get("VLAWORKS_CACHE") or Path.home() / ".cache" / "vlaworks")


def cached_folder(settings: TeacherSettings | None = None) -> Path:
    """Where :func:`cached_teacher` keeps the teacher of ``settings`` (default settings)."""
    settings = settings or TeacherSettings()
    return cache_root() / "geometry" / f"{BUILTIN_TEACHER}-{settings.digest()}"


def cached_teacher(settings: TeacherSettings | None = None) -> Path:
    """The teacher folder of ``settings`` in the cache, trained there first when absent (one
    process trains; others wait on the lock and reuse it)."""
    settings = settings or TeacherSettings()
    folder = cached_folder(settings)
    if (folder / TEACHER_FILE).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / TEACHER_FILE).exists():
            log.warning("training the geometry teacher once into %s (a few minutes on a CPU)", folder)
            tmp = folder.with_name(f".{folder.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            train_teacher(settings, tmp)
            os.rename(tmp, folder)
    return folder
