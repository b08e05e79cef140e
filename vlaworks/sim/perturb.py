"""Perturbation families (LIBERO-Plus style) with a severity knob in [0, 1].

Families and what each one changes (and nothing else):

* ``camera``: the base camera's position (up to 0.18 m at severity 1), re-aimed at the table.
* ``robot_init``: the initial EE position (up to 0.1 m) and yaw (up to 0.6 rad).
* ``language``: the instruction, paraphrased from held-out templates (see :mod:`.language`).
* ``lighting``: light intensities, directions and ambient colour.
* ``background``: table and floor texture and colour.
* ``noise``: Gaussian sensor noise on RGB images (std up to 30 grey levels).
* ``layout``: up to three extra distractor objects the instruction never names.
* ``mask_background``: RGB pixels that belong to neither an object nor the gripper are
  blended toward :data:`MASK_VALUE` (severity 1 replaces them).

Every family draws from its own random stream (seeded by the episode seed and the family),
so adding one perturbation never changes what another, or the clean episode, would draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlaworks.miniature import PERTURB_STREAM
from vlaworks.sim.scene import (
    BASE_CAMERA_POS,
    BASE_CAMERA_TARGET,
    FLOOR_TEXTURES,
    SEG_BACKGROUND,
    TABLE_TEXTURES,
    Scene,
    look_at_xyaxes,
    xyaxes_to_quat,
)

FAMILIES = (
    "camera",
    "robot_init",
    "language",
    "lighting",
    "background",
    "noise",
    "layout",
    "mask_background",
)
MASK_VALUE = 0
MAX_DISTRACTORS = 3


@dataclass(frozen=True)
class Perturbation:
    """One perturbation family at a severity in [0, 1]."""

    family: str
    severity: float

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown perturbation family {self.family!r}; choose one of {FAMILIES}")
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(
                f"perturbation severity must be in [0, 1]; got {self.severity} for {self.family}"
            )

    def __str__(self) -> str:
        return f"{self.family}:{self.severity:g}"


def parse_perturbations(specs: list[str] | tuple[str, ...]) -> list[Perturbation]:
    """Parse ``["FAMILY:SEVERITY", ...]`` (a bare ``FAMILY`` means severity 1); families must be unique."""
    out: dict[str, Perturbation] = {}
    for spec in specs:
        if isinstance(spec, Perturbation):
            p = spec
        else:
            family, _, raw = str(spec).strip().partition(":")
            try:
                severity = float(raw) if raw else 1.0
            except ValueError as err:
                raise ValueError(
                    f"bad perturbation {spec!r}: severity {raw!r} is not a number; write FAMILY:SEVERITY, "
                    f"e.g. lighting:0.5"
                ) from err
            p = Perturbation(family.strip(), severity)
        if p.family in out:
            raise ValueError(f"perturbation family {p.family!r} given twice in {list(specs)}")
        out[p.family] = p
    return list(out.values())


def family_rng(seed: int, family: str) -> np.random.Generator:
    """The independent random stream of ``family`` for the episode ``seed``."""
    return np.random.default_rng([seed, PERTURB_STREAM + FAMILIES.index(family)])


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def apply_camera(scene: Scene, severity: float, rng: np.random.Generator) -> None:
    """Move the base camera on a random direction by ``0.18 * severity`` m, looking at the table."""
    pos = BASE_CAMERA_POS + _unit(rng, 3) * 0.18 * severity
    scene.model.cam_pos[scene.base_cam] = pos
    scene.model.cam_quat[scene.base_cam] = xyaxes_to_quat(look_at_xyaxes(pos, BASE_CAMERA_TARGET))


def robot_init_pose(
    home: np.ndarray, severity: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Initial EE (position, roll/pitch/yaw) shifted by up to 0.1 m and 0.6 rad of yaw."""
    pos = home + _unit(rng, 3) * 0.1 * severity
    yaw = rng.uniform(-1.0, 1.0) * 0.6 * severity
    return pos, np.array([0.0, 0.0, yaw])


def apply_lighting(scene: Scene, severity: float, rng: np.random.Generator) -> None:
    """Scale, tint and re-aim the lights; dim or brighten the headlight's ambient term."""
    m, d = scene.model, scene.default
    n = m.nlight
    scale = np.exp(rng.uniform(-1.0, 1.0, size=(n, 1)) * 0.9 * severity)
    tint = 1.0 + rng.uniform(-0.4, 0.4, size=(n, 3)) * severity
    m.light_diffuse[:] = np.clip(d["light_diffuse"] * scale * tint, 0.0, 1.0)
    direction = d["light_dir"] + rng.normal(size=(n, 3)) * 0.6 * severity
    direction[:, 2] = np.minimum(direction[:, 2], -0.3)  # keep the lights pointing down
    m.light_dir[:] = direction / np.linalg.norm(direction, axis=1, keepdims=True)
    ambient = np.exp(rng.uniform(-1.0, 0.6) * severity)
    m.vis.headlight.ambient[:] = np.clip(d["headlight_ambient"] * ambient, 0.0, 1.0)
    m.vis.headlight.diffuse[:] = np.clip(d["headlight_diffuse"] * ambient, 0.0, 1.0)


def apply_background(scene: Scene, severity: float, rng: np.random.Generator) -> None:
    """Swap table / floor textures for non-default ones and tint them by ``severity``."""
    m = scene.model
    table = scene.table_mats[int(rng.integers(1, len(TABLE_TEXTURES)))]
    floor = scene.floor_mats[int(rng.integers(1, len(FLOOR_TEXTURES)))]
    for geom, mat in ((scene.table_geom, table), (scene.floor_geom, floor)):
        m.geom_matid[geom] = mat
        tint = rng.uniform(0.3, 1.0, size=3)
        m.mat_rgba[mat, :3] = (1.0 - severity) + severity * tint


def apply_noise(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise (std ``30 * severity`` grey levels) to a uint8 image."""
    noisy = image.astype(np.float32) + rng.normal(0.0, 30.0 * severity, size=image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def apply_mask(image: np.ndarray, segmentation: np.ndarray, severity: float) -> np.ndarray:
    """Blend background pixels (segmentation == 0) toward :data:`MASK_VALUE`."""
    out = image.copy()
    bg = segmentation == SEG_BACKGROUND
    out[bg] = np.rint((1.0 - severity) * image[bg] + severity * MASK_VALUE).astype(np.uint8)
    return out


def n_distractors(severity: float) -> int:
    """Extra distractors for a layout severity: 0 at 0, 1..3 above."""
    return int(np.ceil(MAX_DISTRACTORS * severity))
