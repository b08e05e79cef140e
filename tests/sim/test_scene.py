"""Scene physics (grasping), segmentation ids and camera matrices."""

from __future__ import annotations

import numpy as np
import pytest

from vlaworks.sim.scene import SEG_BACKGROUND, SEG_GRIPPER, STATE_DIM, Scene


@pytest.fixture(scope="module")
def scene():
    s = Scene(image_size=48)
    yield s
    s.close()


def _goto(scene: Scene, target: np.ndarray, grip: float, steps: int = 40) -> None:
    for _ in range(steps):
        action = np.zeros(7)
        action[:3] = np.clip((target - scene.ee_target) / 0.015, -1, 1)
        action[6] = grip
        scene.apply_action(action)


def test_parallel_gripper_lifts_and_holds_a_cube(scene):
    (cube,) = scene.reset([("cube", "red", 0.05, 0.02, 0.0)])
    p = scene.pos(cube)
    _goto(scene, np.array([p[0], p[1], 0.1]), -1)
    _goto(scene, np.array([p[0], p[1], 0.014]), -1)
    _goto(scene, scene.ee_target, 1, steps=6)
    _goto(scene, np.array([-0.1, -0.05, 0.15]), 1, steps=60)
    assert scene.touching_gripper(cube)
    assert scene.pos(cube)[2] > 0.1
    assert np.allclose(scene.pos(cube)[:2], [-0.1, -0.05], atol=0.01)
    _goto(scene, scene.ee_target, -1, steps=30)
    assert scene.pos(cube)[2] == pytest.approx(0.02, abs=0.003)  # dropped back to the table


def test_state_and_segmentation_ids(scene):
    objs = scene.reset([("cube", "blue", 0.0, 0.0, 0.3), ("bowl", "", 0.15, 0.1, 0.0)])
    state = scene.state()
    assert state.shape == (STATE_DIM,) and state.dtype == np.float32
    assert state[6] == pytest.approx(0.09, abs=0.002)  # fully open
    rgb, depth, seg = scene.render("base", depth=True, segmentation=True)
    assert rgb.dtype == np.uint8 and depth.dtype == np.float32 and seg.dtype == np.int32
    ids = set(np.unique(seg).tolist())
    assert {SEG_BACKGROUND, SEG_GRIPPER, objs[0].seg_id, objs[1].seg_id} <= ids
    parked = {o.seg_id for o in scene.objects if not o.active}
    assert not ids & parked


def test_camera_matrices_project_objects_onto_their_pixels(scene):
    (cube,) = scene.reset([("cube", "green", -0.1, 0.05, 0.0)])
    for cam in ("base", "wrist"):
        k, world_from_cam = scene.camera_matrices(cam)
        _, depth, seg = scene.render(cam, depth=True, segmentation=True)
        p_cam = np.linalg.inv(world_from_cam) @ np.append(scene.pos(cube), 1.0)
        if p_cam[2] <= 0:
            continue
        u, v, _ = k @ (p_cam[:3] / p_cam[2])
        assert seg[int(v), int(u)] == cube.seg_id, cam
        # depth is the z distance along the optical axis, up to the cube's half size
        assert depth[int(v), int(u)] == pytest.approx(p_cam[2], abs=0.03)


def test_unknown_kind_and_pool_overflow_are_errors(scene):
    with pytest.raises(ValueError, match="unknown object kind"):
        scene.reset([("sphere", "red", 0.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="more bowls"):
        scene.reset([("bowl", "", 0.0, 0.0, 0.0), ("bowl", "", 0.2, 0.0, 0.0)])
