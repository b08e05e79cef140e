"""The tabletop scene: MJCF built in Python, one compiled model per environment.

Layout of the world (metres): the table top is the plane ``z = 0`` spanning
``|x| <= TABLE_HALF[0]``, ``|y| <= TABLE_HALF[1]``; the base camera looks along ``+y``
from the front, so image-right is ``+x`` and "front" (closest to the camera) is small ``y``.

The gripper is a free, gravity-compensated hand welded to a mocap target (so contacts see
real velocities and friction can hold a grasped object) carrying two position-controlled
slide fingers; the end-effector (EE) point is the pinch point between the fingertips.
A fixed *pool* of objects (cubes, cylinders, a bowl, a plate) is compiled once; each
episode activates some of them, recolours them and places them on the table, and parks
the rest out of sight with collisions off. Switching layouts therefore never recompiles
the model or re-creates the GL context.

Action (7-D, each in [-1, 1]): (dx, dy, dz, droll, dpitch, dyaw, gripper), scaled by
:data:`MAX_TRANSLATION` / :data:`MAX_ROTATION` per control step; gripper > 0 closes.
State (:data:`STATE_DIM` = 7, float32): EE x, y, z, roll, pitch, yaw, finger opening (m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from vlaworks.sim.render import extrinsics, intrinsics, make_renderer, mujoco

STATE_DIM = 7
STATE_NAMES = ("ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper_opening")
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")

TIMESTEP = 0.004
SUBSTEPS = 10  # control period 0.04 s (25 Hz)
MAX_TRANSLATION = 0.015  # metres per control step at |action| = 1
MAX_ROTATION = 0.1  # radians per control step at |action| = 1
TABLE_HALF = (0.4, 0.3)
WORKSPACE_LOW = np.array([-0.35, -0.27, 0.012])
WORKSPACE_HIGH = np.array([0.35, 0.27, 0.35])
ROT_LIMIT = np.array([0.6, 0.6, np.pi])
HOME_POS = np.array([0.0, -0.05, 0.22])
FINGER_OPEN = 0.045  # per finger; full opening is twice this
FINGER_CLOSE_FORCE = 8.0

CUBE_HALF = 0.02
CYL_RADIUS, CYL_HALF = 0.02, 0.03
BOWL_RADIUS, BOWL_WALL_HALF_H = 0.06, 0.018
PLATE_RADIUS, PLATE_HALF_H = 0.065, 0.005

SEG_BACKGROUND = 0
SEG_GRIPPER = 1

#: Colours used by the robot tasks.
TASK_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.7, 0.2),
    "blue": (0.1, 0.25, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (1.0, 0.5, 0.05),
    "purple": (0.55, 0.15, 0.75),
}
#: Extra colours, only in the (wider) vision-language appearance distribution.
EXTRA_COLORS: dict[str, tuple[float, float, float]] = {
    "pink": (1.0, 0.45, 0.7),
    "cyan": (0.1, 0.85, 0.9),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.08),
    "brown": (0.45, 0.28, 0.12),
    "gray": (0.5, 0.5, 0.5),
}
ALL_COLORS = {**TASK_COLORS, **EXTRA_COLORS}
CONTAINER_COLORS = {"bowl": (0.92, 0.92, 0.88), "plate": (0.75, 0.78, 0.85)}

GRASPABLE = ("cube", "cylinder")
POOL = {"cube": 6, "cylinder": 4, "bowl": 1, "plate": 1}
#: Footprint radius per kind, for non-overlapping placement.
FOOTPRINT = {"cube": 0.03, "cylinder": 0.025, "bowl": BOWL_RADIUS + 0.008, "plate": PLATE_RADIUS}
REST_Z = {"cube": CUBE_HALF, "cylinder": CYL_HALF, "bowl": 0.004, "plate": PLATE_HALF_H}

#: Procedural textures: (builtin, mark, rgb1, rgb2). Index 0 is the clean default.
TABLE_TEXTURES = (
    ("flat", "random", (0.55, 0.42, 0.3), (0.45, 0.33, 0.22)),
    ("checker", "none", (0.6, 0.6, 0.62), (0.4, 0.4, 0.45)),
    ("gradient", "none", (0.3, 0.45, 0.35), (0.1, 0.2, 0.15)),
    ("flat", "random", (0.2, 0.25, 0.4), (0.8, 0.8, 0.85)),
    ("checker", "edge", (0.75, 0.7, 0.55), (0.3, 0.25, 0.2)),
)
FLOOR_TEXTURES = (
    ("checker", "none", (0.35, 0.35, 0.38), (0.25, 0.25, 0.28)),
    ("gradient", "none", (0.6, 0.5, 0.4), (0.2, 0.15, 0.1)),
    ("flat", "random", (0.3, 0.3, 0.5), (0.9, 0.9, 0.9)),
    ("checker", "edge", (0.5, 0.6, 0.5), (0.2, 0.3, 0.2)),
)
BASE_CAMERA_POS = np.array([0.0, -0.42, 0.52])
BASE_CAMERA_TARGET = np.array([0.0, 0.05, 0.0])
BASE_FOVY = 48.0
WRIST_FOVY = 75.0


def look_at_xyaxes(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera ``xyaxes`` (6 numbers) for a camera at ``pos`` looking at ``target``, z up."""
    forward = target - pos
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.concatenate([right, up])


def xyaxes_to_quat(xyaxes: np.ndarray) -> np.ndarray:
    """Camera orientation quaternion (w, x, y, z) from MuJoCo ``xyaxes``."""
    x, y = xyaxes[:3], xyaxes[3:]
    z = np.cross(x, y)
    mat = np.stack([x, y, z], axis=1).reshape(-1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat)
    return quat


def euler_to_quat(rpy: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of extrinsic x-y-z (roll, pitch, yaw) rotations."""
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.asarray(rpy, dtype=np.float64), "XYZ")
    return quat


def quat_yaw(quat: np.ndarray) -> float:
    """Heading (rotation about world z) of a body with orientation ``quat``."""
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def _fmt(values) -> str:
    return " ".join(f"{float(v):.5g}" for v in values)


def _object_xml(kind: str, index: int) -> str:
    """One pooled object body; parked and collision-free until activated."""
    name = f"{kind}{index}"
    common = 'friction="1.5 0.02 0.0005" condim="4" solref="0.01 1"'
    park = _fmt((1.5 + 0.3 * index, -3.0 - len(kind) * 0.1, -2.0))
    if kind == "cube":
        geoms = f'<geom name="{name}_g" type="box" size="{_fmt([CUBE_HALF] * 3)}" mass="0.05" {common}/>'
    elif kind == "cylinder":
        geoms = f'<geom name="{name}_g" type="cylinder" size="{CYL_RADIUS} {CYL_HALF}" mass="0.05" {common}/>'
    elif kind == "plate":
        size = f"{PLATE_RADIUS} {PLATE_HALF_H}"
        geoms = f'<geom name="{name}_g" type="cylinder" size="{size}" mass="0.3" {common}/>'
    elif kind == "bowl":
        parts = [f'<geom name="{name}_g0" type="cylinder" size="{BOWL_RADIUS} 0.004" mass="0.3" {common}/>']
        n_walls = 12
        for k in range(n_walls):
            angle = 2 * np.pi * k / n_walls
            pos = (BOWL_RADIUS * np.cos(angle), BOWL_RADIUS * np.sin(angle), BOWL_WALL_HALF_H + 0.004)
            half_len = BOWL_RADIUS * np.tan(np.pi / n_walls) + 0.002
            parts.append(
                f'<geom name="{name}_g{k + 1}" type="box" size="0.004 {half_len:.5f} {BOWL_WALL_HALF_H}" '
                f'pos="{_fmt(pos)}" euler="0 0 {angle:.5f}" mass="0.02" {common}/>'
            )
        geoms = "".join(parts)
    else:
        raise ValueError(f"unknown object kind {kind!r}; expected one of {sorted(POOL)}")
    return f'<body name="{name}" pos="{park}" gravcomp="1"><freejoint name="{name}_j"/>{geoms}</body>'


def build_mjcf() -> str:
    """The full scene as an MJCF string (table, floor, gripper, cameras, lights, object pool)."""
    textures, materials = [], []
    for prefix, table in (("table", TABLE_TEXTURES), ("floor", FLOOR_TEXTURES)):
        for k, (builtin, mark, rgb1, rgb2) in enumerate(table):
            textures.append(
                f'<texture name="{prefix}_tex{k}" type="2d" builtin="{builtin}" mark="{mark}" '
                f'rgb1="{_fmt(rgb1)}" rgb2="{_fmt(rgb2)}" markrgb="{_fmt(rgb2)}" random="0.3" '
                f'width="32" height="32"/>'
            )
            repeat = "4 4" if prefix == "table" else "8 8"
            materials.append(
                f'<material name="{prefix}_mat{k}" texture="{prefix}_tex{k}" texrepeat="{repeat}" '
                f'texuniform="false" reflectance="0"/>'
            )
    objects = "".join(_object_xml(kind, i) for kind, n in POOL.items() for i in range(n))
    base_xy = look_at_xyaxes(BASE_CAMERA_POS, BASE_CAMERA_TARGET)
    wrist_pos = np.array([0.0, -0.055, 0.04])
    wrist_xy = look_at_xyaxes(wrist_pos, np.array([0.0, 0.02, -0.06]))
    finger = 'type="box" size="0.006 0.011 0.026" friction="2 0.05 0.001" condim="4" rgba="0.2 0.2 0.22 1"'
    return f"""
<mujoco model="vlaworks_tabletop">
  <compiler angle="radian"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <statistic extent="1" center="0 0 0.1"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <map znear="0.01" zfar="20"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
    <global offwidth="640" offheight="640"/>
  </visual>
  <asset>{"".join(textures)}{"".join(materials)}</asset>
  <worldbody>
    <light name="key" pos="0.3 -0.4 1.2" dir="-0.25 0.35 -1" diffuse="0.6 0.6 0.6" castshadow="false"
           directional="false"/>
    <light name="fill" pos="-0.5 0.3 1.0" dir="0.4 -0.2 -1" diffuse="0.25 0.25 0.25" castshadow="false"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="8 8 2" material="floor_mat0"/>
    <geom name="table" type="box" pos="0 0 -0.025" size="{TABLE_HALF[0]} {TABLE_HALF[1]} 0.025"
          material="table_mat0" friction="1 0.01 0.0001"/>
    <camera name="base" pos="{_fmt(BASE_CAMERA_POS)}" xyaxes="{_fmt(base_xy)}" fovy="{BASE_FOVY}"/>
    <body name="ee_target" mocap="true" pos="{_fmt(HOME_POS)}"/>
    <body name="hand" pos="{_fmt(HOME_POS)}" gravcomp="1">
      <freejoint name="hand_j"/>
      <inertial pos="0 0 0.05" mass="0.5" diaginertia="0.002 0.002 0.002"/>
      <geom name="palm" type="box" pos="0 0 0.055" size="0.065 0.016 0.012" rgba="0.3 0.3 0.33 1"
            contype="0" conaffinity="0"/>
      <geom name="wrist_link" type="cylinder" pos="0 0 0.1" size="0.02 0.035" rgba="0.5 0.5 0.55 1"
            contype="0" conaffinity="0"/>
      <camera name="wrist" pos="{_fmt(wrist_pos)}" xyaxes="{_fmt(wrist_xy)}" fovy="{WRIST_FOVY}"/>
      <site name="pinch" pos="0 0 0" size="0.004" rgba="1 0 0 0"/>
      <body name="finger_l" pos="0 0 0" gravcomp="1">
        <joint name="finger_l" type="slide" axis="-1 0 0" range="0 {FINGER_OPEN}"
               damping="10" armature="0.01" solreflimit="0.004 1"/>
        <geom name="finger_l_g" pos="-0.006 0 0.017" mass="0.03" {finger}/>
      </body>
      <body name="finger_r" pos="0 0 0" gravcomp="1">
        <joint name="finger_r" type="slide" axis="1 0 0" range="0 {FINGER_OPEN}"
               damping="10" armature="0.01" solreflimit="0.004 1"/>
        <geom name="finger_r_g" pos="0.006 0 0.017" mass="0.03" {finger}/>
      </body>
    </body>
    {objects}
  </worldbody>
  <contact><exclude body1="finger_l" body2="finger_r"/></contact>
  <equality><weld body1="ee_target" body2="hand" solref="0.01 1"/></equality>
  <actuator>
    <position name="finger_l" joint="finger_l" kp="400" ctrlrange="0 {FINGER_OPEN}"
              forcerange="-{FINGER_CLOSE_FORCE} {FINGER_CLOSE_FORCE}"/>
    <position name="finger_r" joint="finger_r" kp="400" ctrlrange="0 {FINGER_OPEN}"
              forcerange="-{FINGER_CLOSE_FORCE} {FINGER_CLOSE_FORCE}"/>
  </actuator>
</mujoco>
"""


@dataclass
class SceneObject:
    """One pooled object and, when active, its appearance and semantic identity."""

    name: str
    kind: str
    body_id: int
    geom_ids: tuple[int, ...]
    qpos_adr: int
    qvel_adr: int
    seg_id: int
    color: str = ""
    active: bool = False

    @property
    def label(self) -> str:
        """Natural-language name, e.g. ``"red cube"`` (containers have no colour word)."""
        return f"{self.color} {self.kind}" if self.color else self.kind


class Scene:
    """Compiled model + data + renderer with helpers to lay out, step and render the table."""

    def __init__(self, image_size: int = 128) -> None:
        self.model = mujoco.MjModel.from_xml_string(build_mjcf())
        self.data = mujoco.MjData(self.model)
        self.image_size = image_size
        self.renderer = make_renderer(self.model, image_size, image_size)
        m = self.model
        self.objects: list[SceneObject] = []
        seg = 2
        for kind, n in POOL.items():
            for i in range(n):
                name = f"{kind}{i}"
                body = m.body(name).id
                geoms = tuple(g for g in range(m.ngeom) if m.geom_bodyid[g] == body)
                jnt = m.body_jntadr[body]
                self.objects.append(
                    SceneObject(name, kind, body, geoms, int(m.jnt_qposadr[jnt]), int(m.jnt_dofadr[jnt]), seg)
                )
                seg += 1
        self._park = {o.name: self.data.qpos[o.qpos_adr : o.qpos_adr + 3].copy() for o in self.objects}
        self.hand_mocap = int(m.body_mocapid[m.body("ee_target").id])
        self.hand_qpos = int(m.jnt_qposadr[m.joint("hand_j").id])
        self.finger_qpos = (
            int(m.jnt_qposadr[m.joint("finger_l").id]),
            int(m.jnt_qposadr[m.joint("finger_r").id]),
        )
        self.finger_geoms = (m.geom("finger_l_g").id, m.geom("finger_r_g").id)
        gripper_bodies = {m.body(n).id for n in ("hand", "finger_l", "finger_r")}
        self.seg_lut = np.zeros(m.ngeom + 1, dtype=np.int32)  # index geom id + 1 (background -1 -> 0)
        for g in range(m.ngeom):
            if m.geom_bodyid[g] in gripper_bodies:
                self.seg_lut[g + 1] = SEG_GRIPPER
        for o in self.objects:
            for g in o.geom_ids:
                self.seg_lut[g + 1] = o.seg_id
        self.table_geom = m.geom("table").id
        self.floor_geom = m.geom("floor").id
        self.table_mats = [m.material(f"table_mat{k}").id for k in range(len(TABLE_TEXTURES))]
        self.floor_mats = [m.material(f"floor_mat{k}").id for k in range(len(FLOOR_TEXTURES))]
        self.base_cam = m.camera("base").id
        self.default = {
            "cam_pos": m.cam_pos.copy(),
            "cam_quat": m.cam_quat.copy(),
            "light_diffuse": m.light_diffuse.copy(),
            "light_pos": m.light_pos.copy(),
            "light_dir": m.light_dir.copy(),
            "light_specular": m.light_specular.copy(),
            "light_ambient": m.light_ambient.copy(),
            "headlight_ambient": m.vis.headlight.ambient.copy(),
            "headlight_diffuse": m.vis.headlight.diffuse.copy(),
            "mat_rgba": m.mat_rgba.copy(),
        }
        self.rpy = np.zeros(3)
        self.gripper_closed = False

    # ----------------------------------------------------------------- layout
    def restore_defaults(self) -> None:
        """Undo every appearance change (camera, lights, materials) made by perturbations."""
        m, d = self.model, self.default
        m.cam_pos[:] = d["cam_pos"]
        m.cam_quat[:] = d["cam_quat"]
        m.light_diffuse[:] = d["light_diffuse"]
        m.light_pos[:] = d["light_pos"]
        m.light_dir[:] = d["light_dir"]
        m.light_specular[:] = d["light_specular"]
        m.light_ambient[:] = d["light_ambient"]
        m.vis.headlight.ambient[:] = d["headlight_ambient"]
        m.vis.headlight.diffuse[:] = d["headlight_diffuse"]
        m.mat_rgba[:] = d["mat_rgba"]
        m.geom_matid[self.table_geom] = self.table_mats[0]
        m.geom_matid[self.floor_geom] = self.floor_mats[0]

    def reset(
        self,
        placements: list[tuple[str, str, float, float, float]],
        ee_pos: np.ndarray = HOME_POS,
        ee_rpy: np.ndarray | None = None,
    ) -> list[SceneObject]:
        """Activate objects as ``(kind, colour, x, y, yaw)`` (colour ``""`` for containers).

        Returns the activated :class:`SceneObject` list in the order given. Objects not
        listed are parked with collisions off.
        """
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        free = {kind: [o for o in self.objects if o.kind == kind] for kind in POOL}
        for o in self.objects:
            o.active, o.color = False, ""
        active = []
        for kind, color, x, y, yaw in placements:
            if kind not in free:
                raise ValueError(f"unknown object kind {kind!r}; expected one of {sorted(POOL)}")
            if not free[kind]:
                raise ValueError(f"layout needs more {kind}s than the pool holds ({POOL[kind]})")
            obj = free[kind].pop(0)
            obj.active, obj.color = True, color
            rgb = ALL_COLORS[color] if color else CONTAINER_COLORS[kind]
            d.qpos[obj.qpos_adr : obj.qpos_adr + 3] = (x, y, REST_Z[kind] + 0.001)
            d.qpos[obj.qpos_adr + 3 : obj.qpos_adr + 7] = euler_to_quat(np.array([0.0, 0.0, yaw]))
            for g in obj.geom_ids:
                m.geom_rgba[g] = (*rgb, 1.0)
            active.append(obj)
        for o in self.objects:
            flag = 1 if o.active else 0
            m.body_gravcomp[o.body_id] = 1.0 - flag
            for g in o.geom_ids:
                m.geom_contype[g] = flag
                m.geom_conaffinity[g] = flag
            if not o.active:
                d.qpos[o.qpos_adr : o.qpos_adr + 3] = self._park[o.name]
        self.rpy = np.zeros(3) if ee_rpy is None else np.asarray(ee_rpy, dtype=np.float64).copy()
        d.mocap_pos[self.hand_mocap] = np.clip(ee_pos, WORKSPACE_LOW, WORKSPACE_HIGH)
        d.mocap_quat[self.hand_mocap] = euler_to_quat(self.rpy)
        d.qpos[self.hand_qpos : self.hand_qpos + 3] = d.mocap_pos[self.hand_mocap]
        d.qpos[self.hand_qpos + 3 : self.hand_qpos + 7] = d.mocap_quat[self.hand_mocap]
        self.gripper_closed = False
        for q in self.finger_qpos:
            d.qpos[q] = FINGER_OPEN
        d.ctrl[:] = FINGER_OPEN
        mujoco.mj_forward(m, d)
        for _ in range(5):  # let objects settle onto the table
            mujoco.mj_step(m, d, nstep=10)
        return active

    def refresh(self) -> None:
        """Recompute derived quantities (camera poses, ...) after editing the model at reset."""
        mujoco.mj_forward(self.model, self.data)

    # ----------------------------------------------------------------- control
    def apply_action(self, action: np.ndarray) -> None:
        """Advance one control step: move the mocap hand smoothly, drive the fingers."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        m, d = self.model, self.data
        start = d.mocap_pos[self.hand_mocap].copy()
        target = np.clip(start + a[:3] * MAX_TRANSLATION, WORKSPACE_LOW, WORKSPACE_HIGH)
        rpy_start = self.rpy.copy()
        self.rpy = np.clip(self.rpy + a[3:6] * MAX_ROTATION, -ROT_LIMIT, ROT_LIMIT)
        self.gripper_closed = bool(a[6] > 0.0)
        d.ctrl[:] = 0.0 if self.gripper_closed else FINGER_OPEN
        for k in range(1, SUBSTEPS + 1):
            f = k / SUBSTEPS
            d.mocap_pos[self.hand_mocap] = start + (target - start) * f
            d.mocap_quat[self.hand_mocap] = euler_to_quat(rpy_start + (self.rpy - rpy_start) * f)
            mujoco.mj_step(m, d)

    # ----------------------------------------------------------------- state
    @property
    def ee_pos(self) -> np.ndarray:
        """Actual pinch-point position (the hand lags its mocap target slightly)."""
        return self.data.qpos[self.hand_qpos : self.hand_qpos + 3].copy()

    @property
    def ee_target(self) -> np.ndarray:
        """Commanded pinch-point position (the mocap target)."""
        return self.data.mocap_pos[self.hand_mocap].copy()

    @property
    def ee_rpy(self) -> np.ndarray:
        """Actual hand orientation as extrinsic x-y-z (roll, pitch, yaw)."""
        quat = self.data.qpos[self.hand_qpos + 3 : self.hand_qpos + 7]
        return Rotation.from_quat(quat, scalar_first=True).as_euler("xyz")

    @property
    def gripper_opening(self) -> float:
        opening = sum(self.data.qpos[q] for q in self.finger_qpos)
        return float(np.clip(opening, 0.0, 2 * FINGER_OPEN))  # joint limits are soft by a hair

    def state(self) -> np.ndarray:
        """Proprio state, float32[STATE_DIM]: EE xyz, roll/pitch/yaw, finger opening (m)."""
        return np.concatenate([self.ee_pos, self.ee_rpy, [self.gripper_opening]]).astype(np.float32)

    def pos(self, obj: SceneObject) -> np.ndarray:
        return self.data.qpos[obj.qpos_adr : obj.qpos_adr + 3].copy()

    def yaw(self, obj: SceneObject) -> float:
        return quat_yaw(self.data.qpos[obj.qpos_adr + 3 : obj.qpos_adr + 7])

    def touching_gripper(self, obj: SceneObject) -> bool:
        """Whether any finger geom is in contact with ``obj``."""
        d = self.data
        geoms = set(obj.geom_ids)
        for c in d.contact[: d.ncon]:
            pair = (c.geom1, c.geom2)
            if (pair[0] in self.finger_geoms and pair[1] in geoms) or (
                pair[1] in self.finger_geoms and pair[0] in geoms
            ):
                return True
        return False

    def active_objects(self) -> list[SceneObject]:
        return [o for o in self.objects if o.active]

    # ----------------------------------------------------------------- render
    def render(
        self, camera: str, depth: bool = False, segmentation: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """RGB uint8[H,W,3], optional depth float32[H,W] (m), optional segmentation int32[H,W]."""
        r = self.renderer
        r.update_scene(self.data, camera=camera)
        rgb = r.render().copy()
        dep = seg = None
        if depth:
            r.enable_depth_rendering()
            dep = r.render().astype(np.float32)
            r.disable_depth_rendering()
        if segmentation:
            r.enable_segmentation_rendering()
            raw = r.render()
            r.disable_segmentation_rendering()
            seg = self.seg_lut[raw[..., 0] + 1]
        return rgb, dep, seg

    def camera_matrices(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(intrinsics 3x3, world-from-camera 4x4 in OpenCV convention) of ``camera`` now."""
        cam = self.model.camera(camera).id
        k = intrinsics(float(self.model.cam_fovy[cam]), self.image_size, self.image_size)
        return k, extrinsics(self.data.cam_xpos[cam], self.data.cam_xmat[cam])

    def close(self) -> None:
        self.renderer.close()
