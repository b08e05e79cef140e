"""Off-screen CPU rendering: GL back-end selection and camera matrices.

MuJoCo fixes its OpenGL back-end from ``MUJOCO_GL`` when it is first imported. If the
variable is unset, this module probes EGL in a short subprocess and falls back to OSMesa
when EGL cannot open a context; the choice is written to ``MUJOCO_GL`` so child processes
inherit it (and MuJoCo's GL-context module is reloaded if it was imported already). When no back-end works,
:func:`make_renderer` raises an error naming the Debian packages to install.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

GL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"
_PROBE = (
    "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); r = mujoco.Renderer(m, 8, 8); r.close()"
)


def _backend_works(backend: str) -> bool:
    """Whether a fresh Python can open an off-screen context with ``backend``."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _choose_backend() -> bool:
    """Set ``MUJOCO_GL`` to a working back-end (EGL first, then OSMesa) if the user did not.

    If ``mujoco`` was already imported without ``MUJOCO_GL`` (it then picked GLFW, which
    needs a display), its GL-context module is reloaded with the new choice; this works as
    long as PyOpenGL itself is not loaded yet. Returns False when the choice cannot apply.
    """
    if "MUJOCO_GL" in os.environ:
        return True
    chosen = next((b for b in ("egl", "osmesa") if _backend_works(b)), "egl")
    os.environ["MUJOCO_GL"] = chosen  # make_renderer reports the missing packages if neither works
    if "mujoco" not in sys.modules:
        return True
    if "OpenGL" in sys.modules:
        return False
    from mujoco.rendering.classic import gl_context

    importlib.reload(gl_context)
    return True


_GL_CHOICE_APPLIED = _choose_backend()

import mujoco  # noqa: E402  (must follow the back-end choice above)
import numpy as np  # noqa: E402


def make_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A ``mujoco.Renderer`` for ``model``; explains how to fix a missing GL stack."""
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # GL failures surface as several exception types
        current = os.environ.get("MUJOCO_GL", "<unset>")
        if not _GL_CHOICE_APPLIED:
            raise RuntimeError(
                "Off-screen rendering failed: `mujoco` and PyOpenGL were imported before vlaworks.sim "
                "with MUJOCO_GL unset, so MuJoCo chose an on-screen back-end. Export MUJOCO_GL=egl "
                f"(or osmesa), or import vlaworks.sim before mujoco. ({err})"
            ) from err
        raise RuntimeError(
            f"Off-screen rendering failed with MUJOCO_GL={current} ({err}). Try `export MUJOCO_GL=osmesa` "
            f"(or egl), and install the GL libraries: sudo apt-get install {GL_PACKAGES}"
        ) from err


def intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """Pinhole intrinsics (3x3, pixels) of a MuJoCo camera with vertical field of view ``fovy_deg``."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def extrinsics(cam_xpos: np.ndarray, cam_xmat: np.ndarray) -> np.ndarray:
    """World-from-camera 4x4 in the OpenCV convention (x right, y down, z forward).

    MuJoCo cameras look along their -z with y up; flipping y and z gives the OpenCV frame
    that matches :func:`intrinsics`, so ``K @ inv(T)[:3] @ p_world`` projects a point.
    """
    rot = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    out = np.eye(4, dtype=np.float32)
    out[:3, :3] = rot
    out[:3, 3] = cam_xpos
    return out
