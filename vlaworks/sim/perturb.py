"""Perturbation families (LIBERO-Plus style) with a severity knob in [0, 1], in two calibrations.

A perturbation is written ``FAMILY[@CALIBRATION][:SEVERITY]``: severity 0 is the clean
episode, severity 1 (also a bare ``FAMILY``) the family's strongest level under the
calibration, and in between the magnitudes below scale with severity (language steps
through tiers; background swaps textures at any severity and tints by it).

* ``v2`` (the default) is calibrated against LIBERO-Plus (Fei et al. 2025, arXiv 2510.13626):
  severity 1 reaches the strongest level of the matching LIBERO-Plus dimension, measured from
  its released task definitions (BENCHMARKS.md, "Perturbation calibration").
* ``v1`` keeps the original, milder ranges, so results measured with them stay reproducible
  by name (``camera@v1:0.3``; :data:`vlaworks.eval.protocol.CONDITIONS` pins them).

Families and what each one changes (and nothing else); "s" is the severity:

* ``camera``: the base camera. v2 picks one LIBERO-Plus camera sub-dimension per episode:
  an orbit about the table's vertical axis by ``75 s`` degrees (half the episodes also
  ``15 s`` degrees higher), the distance to the table scaled by ``1 + s`` (LIBERO-Plus's
  "field of view" axis: it moves the camera, the lens stays), or the orientation turned by
  ``10 s`` degrees of yaw and of pitch without moving. v1: moved ``0.18 s`` m in a random
  direction and re-aimed at the table.
* ``robot_init``: the initial EE pose. v2: moved exactly ``0.2 s`` m (at most ``0.1 s`` m
  vertically), yaw up to ``0.85 s`` rad and roll / pitch up to ``0.35 s`` rad each. v1: moved
  ``0.1 s`` m in a random direction, yaw up to ``0.6 s`` rad.
* ``language``: the instruction, paraphrased from held-out templates in tiers (see
  :func:`vlaworks.sim.language.severity_tier`); v2's top tier also names objects by
  description and prefixes an irrelevant sentence.
* ``lighting``: light intensities, colours and directions and the headlight's ambient
  term; v2 also varies the lights' specular strength.
* ``background``: table and floor texture and colour (one calibration: v1 = v2).
* ``noise``: image degradation on every camera. v2 picks one kind per episode: Gaussian
  noise (std ``30 s`` grey levels), Gaussian blur, motion blur, zoom blur (to ``1 + 0.55 s``)
  or fog (strength ``5 s``), the blurs sized relative to the image as LIBERO-Plus's strongest
  are to its 256 px frames. v1: Gaussian noise only.
* ``layout``: extra distractor objects the instruction never names, up to ``ceil(5 s)``
  (v1: ``ceil(3 s)``); with LIBERO-style fixed layouts v2 also moves every task object
  ``0.05 s`` m from its place in the clean episode (random layouts are random already).
* ``mask_background``: RGB pixels that belong to neither an object nor the gripper are
  blended toward :data:`MASK_VALUE` (severity 1 replaces them; one calibration).

Every family draws from its own random stream (seeded by the episode seed and the family),
so adding one perturbation never changes what another, or the clean episode, would draw.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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
CALIBRATIONS = ("v1", "v2")
DEFAULT_CALIBRATION = "v2"
MASK_VALUE = 0

# v2 magnitudes at severity 1 (LIBERO-Plus's strongest level; BENCHMARKS.md has the sources)
CAMERA_ORBIT_DEG = 75.0
CAMERA_ELEVATION_DEG = 15.0
CAMERA_DISTANCE_GAIN = 1.0  # distance x (1 + gain * s)
CAMERA_TURN_DEG = 10.0
CAMERA_MODES = ("orbit", "distance", "orientation")
ROBOT_SHIFT_M = 0.2
ROBOT_LIFT_M = 0.1  # largest vertical part of the shift (keeps the start above the objects)
ROBOT_YAW_RAD = 0.85
ROBOT_TILT_RAD = 0.35
SPECULAR_MAX = 1.0
NOISE_KINDS = ("gaussian", "gaussian_blur", "motion_blur", "zoom_blur", "fog")
NOISE_STD = 30.0  # grey levels (both calibrations)
REFERENCE_WIDTH = 256  # LIBERO-Plus's frames; blur sizes below are in its pixels
BLUR_SIGMA_PX = 10.0
MOTION_SIGMA_PX = 20.0
ZOOM_MAX = 0.55  # zoom blur averages zooms from 1 to 1 + ZOOM_MAX * s
ZOOM_STEPS = 8
FOG_STRENGTH = 5.0
MAX_DISTRACTORS = 5
LAYOUT_SHIFT_M = 0.05

# v1 magnitudes at severity 1
CAMERA_SHIFT_M_V1 = 0.18
ROBOT_SHIFT_M_V1 = 0.1
ROBOT_YAW_RAD_V1 = 0.6
MAX_DISTRACTORS_V1 = 3


@dataclass(frozen=True)
class Perturbation:
    """One perturbation family at a severity in [0, 1] under a calibration (``v1`` | ``v2``)."""

    family: str
    severity: float
    calibration: str = DEFAULT_CALIBRATION

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown perturbation family {self.family!r}; choose one of {FAMILIES}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(
                f"unknown perturbation calibration {self.calibration!r} for {self.family}; "
                f"choose one of {CALIBRATIONS} (e.g. camera@v1:0.3)"
            )
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(
                f"perturbation severity must be in [0, 1]; got {self.severity} for {self.family}"
            )

    def __str__(self) -> str:
        return f"{self.family}@{self.calibration}:{self.severity:g}"


def parse_perturbations(specs: list[str] | tuple[str, ...]) -> list[Perturbation]:
    """Parse ``["FAMILY[@CALIBRATION][:SEVERITY]", ...]`` (no severity means 1, no calibration
    :data:`DEFAULT_CALIBRATION`); families must be unique."""
    out: dict[str, Perturbation] = {}
    for spec in specs:
        if isinstance(spec, Perturbation):
            p = spec
        else:
            name, _, raw = str(spec).strip().partition(":")
            family, _, calibration = name.partition("@")
            try:
                severity = float(raw) if raw else 1.0
            except ValueError as err:
                raise ValueError(
                    f"bad perturbation {spec!r}: severity {raw!r} is not a number; write "
                    f"FAMILY[@CALIBRATION]:SEVERITY, e.g. lighting:0.5 or camera@v1:0.3"
                ) from err
            p = Perturbation(family.strip(), severity, calibration.strip() or DEFAULT_CALIBRATION)
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


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``v`` rotated by ``angle`` rad about the unit ``axis`` (Rodrigues)."""
    return (
        v * math.cos(angle)
        + np.cross(axis, v) * math.sin(angle)
        + axis * float(axis @ v) * (1.0 - math.cos(angle))
    )


# ---------------------------------------------------------------------------- camera
def camera_pose(severity: float, rng: np.random.Generator, calibration: str) -> tuple[np.ndarray, np.ndarray]:
    """The base camera's perturbed (position, MuJoCo ``xyaxes``) for one episode."""
    if calibration == "v1":
        pos = BASE_CAMERA_POS + _unit(rng, 3) * CAMERA_SHIFT_M_V1 * severity
        return pos, look_at_xyaxes(pos, BASE_CAMERA_TARGET)
    mode = CAMERA_MODES[int(rng.integers(len(CAMERA_MODES)))]
    signs = rng.choice([-1.0, 1.0], size=2)
    raise_view = bool(rng.integers(2))
    offset = BASE_CAMERA_POS - BASE_CAMERA_TARGET
    z_axis = np.array([0.0, 0.0, 1.0])
    if mode == "orbit":
        if raise_view:
            side = np.cross(offset, z_axis)
            side /= np.linalg.norm(side)
            offset = _rotate(offset, side, math.radians(CAMERA_ELEVATION_DEG * severity))
        offset = _rotate(offset, z_axis, signs[0] * math.radians(CAMERA_ORBIT_DEG * severity))
    elif mode == "distance":
        offset = offset * (1.0 + CAMERA_DISTANCE_GAIN * severity)
    pos = BASE_CAMERA_TARGET + offset
    xyaxes = look_at_xyaxes(pos, BASE_CAMERA_TARGET)
    if mode == "orientation":
        turn = math.radians(CAMERA_TURN_DEG * severity)
        right, up = (_rotate(a, z_axis, signs[0] * turn) for a in (xyaxes[:3], xyaxes[3:]))
        up = _rotate(up, right, signs[1] * turn)
        xyaxes = np.concatenate([right, up])
    return pos, xyaxes


def apply_camera(scene: Scene, severity: float, rng: np.random.Generator, calibration: str) -> None:
    """Move / turn the base camera as :func:`camera_pose` draws it."""
    pos, xyaxes = camera_pose(severity, rng, calibration)
    scene.model.cam_pos[scene.base_cam] = pos
    scene.model.cam_quat[scene.base_cam] = xyaxes_to_quat(xyaxes)


# ---------------------------------------------------------------------------- robot
def robot_init_pose(
    home: np.ndarray, severity: float, rng: np.random.Generator, calibration: str
) -> tuple[np.ndarray, np.ndarray]:
    """Initial EE (position, roll/pitch/yaw) moved away from ``home`` (see the module doc)."""
    if calibration == "v1":
        pos = home + _unit(rng, 3) * ROBOT_SHIFT_M_V1 * severity
        yaw = rng.uniform(-1.0, 1.0) * ROBOT_YAW_RAD_V1 * severity
        return pos, np.array([0.0, 0.0, yaw])
    heading = rng.uniform(-np.pi, np.pi)
    dz = rng.uniform(-1.0, 1.0) * ROBOT_LIFT_M * severity
    horizontal = math.sqrt(max((ROBOT_SHIFT_M * severity) ** 2 - dz**2, 0.0))
    pos = home + np.array([horizontal * math.cos(heading), horizontal * math.sin(heading), dz])
    tilt = rng.uniform(-1.0, 1.0, size=2) * ROBOT_TILT_RAD * severity
    yaw = rng.uniform(-1.0, 1.0) * ROBOT_YAW_RAD * severity
    return pos, np.array([tilt[0], tilt[1], yaw])


# ---------------------------------------------------------------------------- appearance
def apply_lighting(scene: Scene, severity: float, rng: np.random.Generator, calibration: str) -> None:
    """Scale, tint and re-aim the lights; dim or brighten the headlight's ambient term; v2 also
    sets each light's specular strength between its default and a random level in [0, 1]."""
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
    if calibration != "v1":
        level = rng.uniform(0.0, SPECULAR_MAX, size=(n, 1))
        m.light_specular[:] = (1.0 - severity) * d["light_specular"] + severity * level


def apply_background(scene: Scene, severity: float, rng: np.random.Generator) -> None:
    """Swap table / floor textures for non-default ones and tint them by ``severity``."""
    m = scene.model
    table = scene.table_mats[int(rng.integers(1, len(TABLE_TEXTURES)))]
    floor = scene.floor_mats[int(rng.integers(1, len(FLOOR_TEXTURES)))]
    for geom, mat in ((scene.table_geom, table), (scene.floor_geom, floor)):
        m.geom_matid[geom] = mat
        tint = rng.uniform(0.3, 1.0, size=3)
        m.mat_rgba[mat, :3] = (1.0 - severity) + severity * tint


def apply_mask(image: np.ndarray, segmentation: np.ndarray, severity: float) -> np.ndarray:
    """Blend background pixels (segmentation == 0) toward :data:`MASK_VALUE`."""
    out = image.copy()
    bg = segmentation == SEG_BACKGROUND
    out[bg] = np.rint((1.0 - severity) * image[bg] + severity * MASK_VALUE).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------- sensor noise
@dataclass(frozen=True)
class SensorNoise:
    """One episode's image degradation: a kind from :data:`NOISE_KINDS`, its severity and the
    per-episode draws (motion direction, fog pattern); :meth:`apply` degrades one frame."""

    kind: str
    severity: float
    angle: float = 0.0
    fog_seed: int = 0

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The degraded uint8 frame; only ``gaussian`` draws from ``rng`` (fresh noise per frame)."""
        if self.kind == "gaussian":
            noisy = image.astype(np.float32) + rng.normal(0.0, NOISE_STD * self.severity, size=image.shape)
            return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        x = image.astype(np.float32) / 255.0
        scale = image.shape[1] / REFERENCE_WIDTH
        if self.kind == "gaussian_blur":
            x = ndimage.gaussian_filter(x, sigma=(BLUR_SIGMA_PX * scale * self.severity,) * 2 + (0,))
        elif self.kind == "motion_blur":
            kernel = _motion_kernel(MOTION_SIGMA_PX * scale * self.severity, self.angle)
            x = np.stack([ndimage.convolve(x[..., c], kernel, mode="nearest") for c in range(3)], -1)
        elif self.kind == "zoom_blur":
            zooms = [_zoom_centre(x, 1.0 + f) for f in np.linspace(0.0, ZOOM_MAX * self.severity, ZOOM_STEPS)]
            x = (x + np.sum(zooms, axis=0)) / (len(zooms) + 1)
        else:  # fog: a smooth haze added, contrast squeezed toward it
            strength = FOG_STRENGTH * self.severity
            top = float(x.max())
            fog = _fog_field(self.fog_seed, image.shape[0], image.shape[1])
            x = (x + strength * fog[..., None]) * top / (top + strength)
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def sensor_noise(severity: float, rng: np.random.Generator, calibration: str) -> SensorNoise:
    """Draw an episode's :class:`SensorNoise` (v1: Gaussian, drawing nothing at reset)."""
    if calibration == "v1":
        return SensorNoise("gaussian", severity)
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    return SensorNoise(kind, severity, float(rng.uniform(0.0, np.pi)), int(rng.integers(1 << 31)))


def _motion_kernel(sigma: float, angle: float) -> np.ndarray:
    """One-sided streak of Gaussian weights (std ``sigma`` px) along ``angle``, normalised."""
    reach = max(int(math.ceil(3 * sigma)), 1)
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1), dtype=np.float32)
    for t in range(reach + 1):
        row = reach + int(round(t * math.sin(angle)))
        col = reach + int(round(t * math.cos(angle)))
        kernel[row, col] += math.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return kernel / kernel.sum()


def _zoom_centre(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` magnified by ``factor`` about its centre, cropped back to its size."""
    h, w = x.shape[:2]
    rows = (np.arange(h) - (h - 1) / 2) / factor + (h - 1) / 2
    cols = (np.arange(w) - (w - 1) / 2) / factor + (w - 1) / 2
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([ndimage.map_coordinates(x[..., c], [rr, cc], order=1) for c in range(x.shape[2])], -1)


@functools.lru_cache(maxsize=8)
def _fog_field(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth [0, 1] haze pattern (four octaves of upsampled value noise), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    field = np.zeros((h, w))
    for octave, cells in enumerate((2, 4, 8, 16)):
        grid = rng.uniform(size=(cells + 1, cells + 1))
        field += 0.5**octave * ndimage.zoom(grid, (h / (cells + 1), w / (cells + 1)), order=1)[:h, :w]
    field -= field.min()
    return field / field.max()


# ---------------------------------------------------------------------------- layout
def n_distractors(severity: float, calibration: str) -> int:
    """Extra distractors for a layout severity: 0 at 0, up to 5 (v1: 3) at 1."""
    top = MAX_DISTRACTORS_V1 if calibration == "v1" else MAX_DISTRACTORS
    return int(np.ceil(top * severity))


def layout_shift(severity: float, calibration: str) -> float:
    """How far (m) each task object of a fixed layout moves from its canonical place (v1: 0)."""
    return 0.0 if calibration == "v1" else LAYOUT_SHIFT_M * severity
