"""Each perturbation family changes what it should and nothing else, is seeded, is clean at
severity 0, reaches its documented magnitudes (v2), and reproduces its old ranges by name (v1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlaworks.envs.tabletop import TabletopEnv
from vlaworks.eval.protocol import CONDITIONS
from vlaworks.sim import language, perturb
from vlaworks.sim.perturb import (
    BASE_CAMERA_POS,
    BASE_CAMERA_TARGET,
    FAMILIES,
    MASK_VALUE,
    NOISE_KINDS,
    Perturbation,
    SensorNoise,
    family_rng,
    parse_perturbations,
)
from vlaworks.sim.scene import HOME_POS, Scene, look_at_xyaxes, xyaxes_to_quat

SEED = 4


def _snapshot(perturbations: list[str], suite: str = "goal", layout: str = "random") -> dict:
    env = TabletopEnv(
        suite, image_size=40, perturbations=perturbations, depth=True, segmentation=True, layout=layout
    )
    try:
        obs, _ = env.reset(seed=SEED)
        scene = env.scene
        return {
            "obs": obs,
            "objects": {o.label: scene.pos(o) for o in env.episode.objects},
            "targets": [(g.obj.label, g.dest.label if g.dest else None) for g in env.episode.goals],
            "cams": env.camera_matrices(),
            "episode": env.episode,
        }
    finally:
        env.close()


@pytest.fixture(scope="module")
def clean():
    return _snapshot([])


@pytest.fixture(scope="module")
def scene():
    s = Scene(16)
    yield s
    s.close()


def _same_images(a: dict, b: dict, key: str, cam: str) -> bool:
    return np.array_equal(a["obs"][key][cam], b["obs"][key][cam])


def _assert_world_unchanged(clean: dict, other: dict) -> None:
    assert clean["objects"].keys() == other["objects"].keys()
    for label, pos in clean["objects"].items():
        np.testing.assert_allclose(other["objects"][label], pos, atol=1e-9)
    assert clean["targets"] == other["targets"]


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Degrees between two vectors."""
    return math.degrees(math.acos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1.0, 1.0)))


# ---------------------------------------------------------------------------- parsing
def test_parse_perturbations():
    assert parse_perturbations(["lighting:0.5", "camera", "noise@v1:0.2", "layout@v2"]) == [
        Perturbation("lighting", 0.5, "v2"),
        Perturbation("camera", 1.0, "v2"),
        Perturbation("noise", 0.2, "v1"),
        Perturbation("layout", 1.0, "v2"),
    ]
    assert str(Perturbation("camera", 0.3, "v1")) == "camera@v1:0.3"
    assert parse_perturbations([str(Perturbation("camera", 0.3, "v1"))]) == [
        Perturbation("camera", 0.3, "v1")
    ]
    with pytest.raises(ValueError, match="unknown perturbation family 'fog'"):
        parse_perturbations(["fog:0.3"])
    with pytest.raises(ValueError, match="unknown perturbation calibration 'v3'"):
        parse_perturbations(["camera@v3:0.3"])
    with pytest.raises(ValueError, match="not a number"):
        parse_perturbations(["lighting:high"])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        parse_perturbations(["noise:1.5"])
    with pytest.raises(ValueError, match="given twice"):
        parse_perturbations(["noise:0.1", "noise@v1:0.2"])


def test_comparison_conditions_keep_the_v1_ranges_their_tables_were_measured_with():
    for specs in CONDITIONS.values():
        for p in parse_perturbations(list(specs)):
            assert p.calibration == "v1" or p.family == "mask_background"


# ---------------------------------------------------------------------------- clean and seeded
def test_clean_is_the_default_and_severity_zero_is_clean(clean):
    for calibration in perturb.CALIBRATIONS:
        zero = _snapshot([f"{f}@{calibration}:0" for f in FAMILIES])
        for key in ("images", "depth", "segmentation"):
            for cam in ("base", "wrist"):
                assert _same_images(clean, zero, key, cam), (calibration, key, cam)
        assert zero["obs"]["instruction"] == clean["obs"]["instruction"]
        np.testing.assert_array_equal(zero["obs"]["state"], clean["obs"]["state"])


@pytest.mark.parametrize("calibration", ["v1", "v2"])
@pytest.mark.parametrize("severity", [0.25, 0.5, 1.0])
def test_every_family_is_seeded(calibration, severity, scene):
    """Same seed and severity: the same draw; another seed: another draw."""

    def draws(seed: int) -> list[np.ndarray]:
        rng = lambda family: family_rng(seed, family)  # noqa: E731
        out = list(perturb.camera_pose(severity, rng("camera"), calibration))
        out += list(perturb.robot_init_pose(HOME_POS, severity, rng("robot_init"), calibration))
        scene.restore_defaults()
        perturb.apply_lighting(scene, severity, rng("lighting"), calibration)
        out += [
            scene.model.light_diffuse.copy(),
            scene.model.light_dir.copy(),
            scene.model.light_specular.copy(),
        ]
        perturb.apply_background(scene, severity, rng("background"))
        out += [scene.model.mat_rgba.copy(), scene.model.geom_matid.copy()]
        noise_rng = rng("noise")
        noise = perturb.sensor_noise(severity, noise_rng, calibration)
        image = np.full((12, 12, 3), 120, dtype=np.uint8)
        out += [
            np.array([NOISE_KINDS.index(noise.kind), noise.angle, noise.fog_seed]),
            noise.apply(image, noise_rng),
        ]
        return out

    first, again, other = draws(SEED), draws(SEED), draws(SEED + 1)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_a_perturbed_episode_is_reproducible_from_its_seed():
    specs = [f"{f}:0.7" for f in FAMILIES if f != "mask_background"]
    a, b = _snapshot(specs, layout="fixed"), _snapshot(specs, layout="fixed")
    for cam in ("base", "wrist"):
        assert _same_images(a, b, "images", cam)
    assert a["obs"]["instruction"] == b["obs"]["instruction"]
    np.testing.assert_array_equal(a["obs"]["state"], b["obs"]["state"])


# ---------------------------------------------------------------------------- v1 reproduces the old ranges
def test_v1_reproduces_the_old_draws_exactly(scene):
    """Values recorded from the perturbations before the LIBERO-Plus calibration (seed 4)."""
    pos, xyaxes = perturb.camera_pose(0.3, family_rng(SEED, "camera"), "v1")
    np.testing.assert_allclose(pos, [-0.0257941797, -0.4626302028, 0.5408164864], atol=1e-9)
    np.testing.assert_allclose(
        xyaxes_to_quat(xyaxes), [0.9285047518, 0.3704688474, -0.0093146084, -0.0233451697], atol=1e-9
    )
    ee, rpy = perturb.robot_init_pose(HOME_POS, 1.0, family_rng(SEED, "robot_init"), "v1")
    np.testing.assert_allclose(ee, [-0.0157566094, -0.1457463762, 0.2441735537], atol=1e-9)
    np.testing.assert_allclose(rpy, [0.0, 0.0, 0.4197051867], atol=1e-9)
    scene.restore_defaults()
    perturb.apply_lighting(scene, 0.6, family_rng(SEED, "lighting"), "v1")
    np.testing.assert_allclose(
        scene.model.light_diffuse,
        [[0.66304433, 0.6410067, 0.57510984], [0.22125791, 0.1614286, 0.18271881]],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        scene.model.light_dir,
        [[-0.2043516503, 0.7172563042, -0.666170997], [0.746348514, -0.1917715042, -0.6373284756]],
        atol=1e-9,
    )
    np.testing.assert_allclose(scene.model.vis.headlight.ambient, [0.41774473] * 3, atol=1e-6)
    np.testing.assert_array_equal(scene.model.light_specular, scene.default["light_specular"])
    assert [perturb.n_distractors(s, "v1") for s in (0.0, 0.3, 0.34, 0.67, 1.0)] == [0, 1, 2, 3, 3]
    assert perturb.layout_shift(1.0, "v1") == 0.0
    assert [language.severity_tier(s, "v1") for s in (0.0, 0.2, 1 / 3, 0.5, 2 / 3, 0.7, 1.0)] == [
        0,
        1,
        1,
        2,
        2,
        3,
        3,
    ]


def test_v1_noise_is_the_old_gaussian_noise():
    rng = family_rng(SEED, "noise")
    noise = perturb.sensor_noise(0.5, rng, "v1")
    assert noise == SensorNoise("gaussian", 0.5)
    image = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    expected = image + family_rng(SEED, "noise").normal(0.0, 15.0, size=image.shape)  # nothing drawn at reset
    np.testing.assert_array_equal(
        noise.apply(image, rng), np.clip(np.rint(expected), 0, 255).astype(np.uint8)
    )


def test_v1_instructions_and_layouts_are_the_old_ones():
    env = TabletopEnv("long", image_size=16, perturbations=["language@v1:1"])
    text = env.reset(seed=SEED)[0]["instruction"]
    env.close()
    assert text == (
        "your job: first drop the red block into the basin; after that, set the blue block down on the dish."
    )
    layout = _snapshot(["layout@v1:0.67"])
    assert list(layout["objects"])[6:] == ["yellow cylinder", "orange cube", "green cube"]
    np.testing.assert_allclose(layout["objects"]["green cube"][:2], [-0.000193, -0.144773], atol=1e-4)


# ------------------------------------------------ v2 reaches LIBERO-Plus's strongest level
def test_camera_v2_reaches_libero_plus_strongest_viewpoints():
    start = BASE_CAMERA_POS - BASE_CAMERA_TARGET
    forward0 = -np.cross(*np.split(look_at_xyaxes(BASE_CAMERA_POS, BASE_CAMERA_TARGET), 2))
    seen = set()
    for seed in range(40):
        rng = family_rng(seed, "camera")
        mode = perturb.CAMERA_MODES[int(family_rng(seed, "camera").integers(3))]
        pos, xyaxes = perturb.camera_pose(1.0, rng, "v2")
        offset = pos - BASE_CAMERA_TARGET
        if mode == "orbit":
            assert _angle(offset[:2], start[:2]) == pytest.approx(75.0, abs=1e-6)
            elevation = math.degrees(math.atan2(offset[2], np.linalg.norm(offset[:2])))
            raised = elevation - math.degrees(math.atan2(start[2], np.linalg.norm(start[:2])))
            assert raised == pytest.approx(0.0, abs=1e-6) or raised == pytest.approx(15.0, abs=1e-6)
            seen.add(("orbit", round(raised)))
        elif mode == "distance":
            np.testing.assert_allclose(offset, 2.0 * start, atol=1e-12)
            seen.add(("distance", 0))
        else:
            np.testing.assert_allclose(pos, BASE_CAMERA_POS, atol=1e-12)
            right, up = xyaxes[:3], xyaxes[3:]
            assert abs(right[2]) < 1e-9  # the turn keeps the horizon level: yaw, then pitch
            assert _angle(right, look_at_xyaxes(BASE_CAMERA_POS, BASE_CAMERA_TARGET)[:3]) == pytest.approx(
                10.0
            )
            assert _angle(-np.cross(right, up), forward0) > 10.0
            seen.add(("orientation", 0))
    assert seen == {("orbit", 0), ("orbit", 15), ("distance", 0), ("orientation", 0)}
    pos, _ = perturb.camera_pose(1.0, family_rng(0, "camera"), "v1")
    assert np.linalg.norm(pos - BASE_CAMERA_POS) == pytest.approx(0.18)


def test_robot_init_v2_reaches_libero_plus_strongest_start_poses(clean):
    yaws, tilts = [], []
    for seed in range(200):
        ee, rpy = perturb.robot_init_pose(HOME_POS, 1.0, family_rng(seed, "robot_init"), "v2")
        assert np.linalg.norm(ee - HOME_POS) == pytest.approx(0.2)
        assert abs(ee[2] - HOME_POS[2]) <= 0.1
        yaws.append(abs(rpy[2]))
        tilts.extend(np.abs(rpy[:2]))
    assert 0.8 < max(yaws) <= 0.85 and 0.33 < max(tilts) <= 0.35
    p = _snapshot(["robot_init:1"])
    _assert_world_unchanged(clean, p)
    assert np.linalg.norm(p["obs"]["state"][:3] - clean["obs"]["state"][:3]) == pytest.approx(0.2, abs=0.01)
    old = _snapshot(["robot_init@v1:1"])
    assert np.linalg.norm(old["obs"]["state"][:3] - clean["obs"]["state"][:3]) == pytest.approx(0.1, abs=0.01)


def test_noise_v2_draws_each_kind_and_degrades_the_image():
    kinds = {perturb.sensor_noise(1.0, family_rng(seed, "noise"), "v2").kind for seed in range(60)}
    assert kinds == set(NOISE_KINDS)
    rng = np.random.default_rng(1)
    image = np.full((64, 64, 3), 60, dtype=np.uint8)
    image[::2] = 190  # stripes: every blur and the fog flatten them

    def edges(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(float), axis=0)).mean())

    for kind in NOISE_KINDS:
        out = SensorNoise(kind, 1.0, angle=1.0, fog_seed=3).apply(image, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.abs(out.astype(float) - image).mean() > 20, kind
        if kind == "gaussian":
            assert np.std(out.astype(float) - image) == pytest.approx(30.0, rel=0.1)
        else:
            assert edges(out) < 0.25 * edges(image), kind
        assert np.array_equal(SensorNoise(kind, 0.0, angle=1.0, fog_seed=3).apply(image, rng), image)


def test_layout_v2_adds_five_distractors_and_displaces_fixed_layouts():
    clean_fixed = _snapshot([], layout="fixed")
    p = _snapshot(["layout:1"], layout="fixed")
    extra = set(p["objects"]) - set(clean_fixed["objects"])
    assert len(extra) == 5
    shifts = [np.linalg.norm(p["objects"][k][:2] - pos[:2]) for k, pos in clean_fixed["objects"].items()]
    np.testing.assert_allclose(shifts, 0.05, atol=0.003)  # the clean episode's layout, each object moved
    assert p["targets"] == clean_fixed["targets"]
    assert p["obs"]["instruction"] == clean_fixed["obs"]["instruction"]


def test_lighting_v2_also_varies_specular(scene):
    scene.restore_defaults()
    perturb.apply_lighting(scene, 1.0, family_rng(SEED, "lighting"), "v2")
    specular = scene.model.light_specular
    assert not np.allclose(specular, scene.default["light_specular"])
    assert (specular >= 0.0).all() and (specular <= 1.0).all()
    scene.restore_defaults()
    np.testing.assert_array_equal(scene.model.light_specular, scene.default["light_specular"])


def test_language_v2_top_tier_describes_objects_and_adds_context(clean):
    assert [language.severity_tier(s, "v2") for s in (0.0, 0.25, 0.3, 0.5, 0.75, 0.8, 1.0)] == [
        0,
        1,
        2,
        2,
        3,
        4,
        4,
    ]
    text = _snapshot(["language:1"])["obs"]["instruction"]
    assert any(text.startswith(c) for c in language.CONTEXTS)
    assert any(word in text for word in ("square", "round")) and "cube" not in text


# ------------------------------------------------ each family changes only its part
def test_camera_moves_only_the_base_view(clean):
    for spec in ("camera:1.0", "camera@v1:1.0"):
        p = _snapshot([spec])
        _assert_world_unchanged(clean, p)
        assert not _same_images(clean, p, "images", "base")
        assert _same_images(clean, p, "images", "wrist")
        assert not np.allclose(clean["cams"]["base"]["extrinsics"], p["cams"]["base"]["extrinsics"])
        np.testing.assert_array_equal(clean["obs"]["state"], p["obs"]["state"])
        assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_language_paraphrases_only_the_instruction(clean):
    for spec in ("language:0.2", "language:0.5", "language:1.0", "language@v1:1.0"):
        p = _snapshot([spec])
        _assert_world_unchanged(clean, p)
        for cam in ("base", "wrist"):
            assert _same_images(clean, p, "images", cam)
        text = p["obs"]["instruction"]
        assert text != clean["obs"]["instruction"]
        assert text not in language.all_training_instructions(p["episode"])


def test_paraphrase_templates_are_disjoint_from_training():
    for verb, templates in language.TRAIN_TEMPLATES.items():
        assert not set(templates) & set(language.PARAPHRASE_TEMPLATES[verb])


@pytest.mark.parametrize("spec", ["lighting:1.0", "lighting@v1:1.0", "background:1.0"])
def test_appearance_changes_pixels_not_geometry(clean, spec):
    p = _snapshot([spec])
    _assert_world_unchanged(clean, p)
    assert not _same_images(clean, p, "images", "base")
    for cam in ("base", "wrist"):
        assert _same_images(clean, p, "depth", cam)
        assert _same_images(clean, p, "segmentation", cam)
    assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_noise_changes_rgb_only(clean):
    p = _snapshot(["noise@v1:0.5"])
    _assert_world_unchanged(clean, p)
    for cam in ("base", "wrist"):
        diff = p["obs"]["images"][cam].astype(float) - clean["obs"]["images"][cam]
        assert 5 < diff.std() < 25
        assert _same_images(clean, p, "depth", cam) and _same_images(clean, p, "segmentation", cam)
    p = _snapshot(["noise:1"])
    _assert_world_unchanged(clean, p)
    for cam in ("base", "wrist"):
        assert not _same_images(clean, p, "images", cam)
        assert _same_images(clean, p, "depth", cam) and _same_images(clean, p, "segmentation", cam)


def test_layout_adds_distractors_without_moving_task_objects_of_random_layouts(clean):
    for spec, n in (("layout@v1:1.0", 3), ("layout:1.0", 5)):
        p = _snapshot([spec])
        assert len(set(p["objects"]) - set(clean["objects"])) == n
        for label, pos in clean["objects"].items():
            np.testing.assert_allclose(p["objects"][label], pos, atol=1e-3)
        assert p["targets"] == clean["targets"]
        assert p["obs"]["instruction"] == clean["obs"]["instruction"]


def test_mask_background_keeps_objects_and_gripper(clean):
    p = _snapshot(["mask_background:1.0"])
    for cam in ("base", "wrist"):
        seg = clean["obs"]["segmentation"][cam]
        fg = seg > 0
        assert fg.any() and (~fg).any()
        np.testing.assert_array_equal(p["obs"]["images"][cam][fg], clean["obs"]["images"][cam][fg])
        assert (p["obs"]["images"][cam][~fg] == MASK_VALUE).all()
