"""PolicyProcessor: camera selection and resizing, state normalisation, action targets and
their padding, the VL view layout, env actions, persistence, and collation into a Batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vlaworks.data.augment import AugmentOptions
from vlaworks.data.normalize import Normalizer
from vlaworks.processing import PolicyProcessor, collate, resize_images


def stats() -> dict:
    def stat(dim: int, low: float, high: float) -> dict:
        return {
            "min": [low] * dim, "max": [high] * dim, "mean": [0.0] * dim, "std": [1.0] * dim,
            "q01": [low] * dim, "q99": [high] * dim, "count": [100],
        }

    return {"action": stat(7, -2.0, 2.0), "observation.state": stat(4, -1.0, 3.0)}


def observation(size: int = 24, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "images": {c: rng.integers(0, 256, (size, size, 3), np.uint8) for c in ("wrist", "base", "side")},
        "state": np.array([-1.0, 1.0, 3.0, 0.0], np.float32),
        "instruction": "pick up the red cube",
    }


def processor(**options) -> PolicyProcessor:
    base = dict(chunk_size=3, use_state=True, normalizer=Normalizer(stats()), image_size=16)
    base.update(options)
    return PolicyProcessor(("base", "wrist"), **base)


def test_resize_images_keeps_uint8_and_constant_images() -> None:
    images = torch.full((2, 3, 32, 32), 77, dtype=torch.uint8)
    out = resize_images(images, 8)
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.uint8 and (out == 77).all()


def test_observation_selects_cameras_in_order_resizes_and_normalises_state() -> None:
    obs = observation()
    row = processor().observation(obs)
    assert row["images"].shape == (2, 3, 16, 16) and row["images"].dtype == torch.uint8
    expected = resize_images(torch.from_numpy(obs["images"]["wrist"]).permute(2, 0, 1), 16)
    assert torch.equal(row["images"][1], expected)
    assert row["camera_names"] == ("base", "wrist") and row["instruction"] == "pick up the red cube"
    np.testing.assert_allclose(row["state"].numpy(), [-1.0, 0.0, 1.0, -0.5], atol=1e-6)


def test_augmentation_only_when_training() -> None:
    shifted = processor(augment=AugmentOptions(shift=4))
    obs = observation()
    plain = processor().observation(obs)["images"]
    assert torch.equal(shifted.observation(obs)["images"], plain)
    torch.manual_seed(0)
    assert not torch.equal(shifted.observation(obs, training=True)["images"], plain)


def test_instruction_rewording_only_when_training() -> None:
    reworded = processor(augment=AugmentOptions(instructions=1.0))
    obs = observation()
    for seed in range(5):
        torch.manual_seed(seed)
        assert reworded.observation(obs)["instruction"] == obs["instruction"]
        assert reworded.batch([obs]).instructions == [obs["instruction"]]
        assert reworded.observation(obs, training=True)["instruction"] != obs["instruction"]


def test_batch_of_observations_and_clear_errors() -> None:
    batch = processor().batch([observation(seed=0), observation(seed=1)])
    assert batch.images.shape == (2, 2, 3, 16, 16) and batch.state.shape == (2, 4)
    assert batch.actions is None and not batch.is_vl
    with pytest.raises(KeyError, match="front"):
        PolicyProcessor(("front",)).batch([observation()])
    with pytest.raises(ValueError, match="no observations"):
        processor().batch([])
    no_state = observation()
    del no_state["state"]
    with pytest.raises(KeyError, match="state"):
        processor().batch([no_state])
    with pytest.raises(ValueError, match="normaliser"):
        processor(normalizer=None).env_actions(torch.zeros(1, 3, 7))
    with pytest.raises(ValueError, match="different image sizes"):
        obs = observation()
        obs["images"]["wrist"] = obs["images"]["wrist"][:8]
        processor(image_size=None).batch([obs])


def test_targets_pad_by_repeating_the_last_action_and_mask_the_padding() -> None:
    actions = np.arange(5 * 7, dtype=np.float32).reshape(5, 7) / 40.0
    proc = processor(normalizer=None)
    target = proc.target(actions, 3)
    assert target["action_mask"].tolist() == [True, True, False]
    np.testing.assert_array_equal(target["actions"].numpy(), actions[[3, 4, 4]])
    windows = proc.action_windows(actions)
    assert windows.shape == (5, 3, 7)
    for t in range(5):
        np.testing.assert_array_equal(windows[t], proc.target(actions, t)["actions"].numpy())


def test_env_actions_invert_the_action_normalisation() -> None:
    proc = processor()
    raw = np.random.default_rng(0).uniform(-2, 2, (2, 3, 7)).astype(np.float32)
    normalised = torch.from_numpy(proc.normalize_actions(raw))
    assert normalised.abs().max() <= 1.0
    np.testing.assert_allclose(proc.env_actions(normalised), raw, atol=1e-5)


def test_vision_language_rows_put_the_image_in_view_zero() -> None:
    image = np.full((24, 24, 3), 200, np.uint8)
    row = processor().vision_language(image, "Point to the cube.", "(0.50, 0.50)", "point")
    assert row["images"].shape == (2, 3, 16, 16) and (row["images"][0] == 200).all()
    assert not row["images"][1].any()
    batch = collate([row, row])
    assert batch.is_vl and batch.vl_prompt == batch.instructions == ["Point to the cube."] * 2
    assert batch.meta["kind"] == ["point", "point"]
    with pytest.raises(ValueError, match="mix"):
        collate([row, processor().observation(observation())])


def test_saved_settings_rebuild_the_same_processor(tmp_path) -> None:
    proc = processor(augment=AugmentOptions(shift=2))
    proc.save(tmp_path)
    back = PolicyProcessor.from_dict(json.loads((tmp_path / "processor.json").read_text()), proc.normalizer)
    assert back.to_dict() == proc.to_dict()
    assert torch.equal(back.observation(observation())["images"], proc.observation(observation())["images"])
    with pytest.raises(ValueError, match="Unknown processor setting"):
        PolicyProcessor.from_dict({**proc.to_dict(), "camras": ["base"]})


# --- prompts (PixelVLA) --------------------------------------------------------------------------
def _prompted(**options) -> PolicyProcessor:
    return processor(**{"prompt_mode": "mixed", "pixel_masks": True, "visual_prompts": True, **options})


def _target(size: int = 24) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[6:12, 3:15] = True
    return mask


def test_prompts_become_batch_masks_and_view_indexed_prompts() -> None:
    from vlaworks.prompts import CameraPrompt

    obs = observation() | {
        "pixel_masks": {"wrist": _target()},
        "visual_prompts": [
            CameraPrompt("box", "wrist", ((0.1, 0.2), (0.5, 0.6))),
            CameraPrompt("mask", "base", mask=_target()),
        ],
    }
    row = _prompted().observation(obs)
    assert row["pixel_masks"].shape == (2, 16, 16) and row["pixel_masks"].dtype == torch.bool
    assert not row["pixel_masks"][0].any()  # the base view got no pixel mask
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:8, 2:10] = True  # rows 6:12 and columns 3:15 of 24 px, at 16 px
    assert torch.equal(row["pixel_masks"][1], expected)
    box, dense = row["visual_prompts"]
    assert (box.kind, box.view, box.coords) == ("box", 1, ((0.1, 0.2), (0.5, 0.6)))
    assert dense.view == 0 and torch.equal(dense.mask, expected)
    batch = collate([row, _prompted().observation(observation())])  # a text-only row beside it
    assert batch.pixel_masks.shape == (2, 2, 16, 16) and batch.visual_prompts[1] == []
    assert not batch.pixel_masks[1].any()
    plain = processor().observation(obs)  # a policy without prompt encoders ignores them
    assert "pixel_masks" not in plain and "visual_prompts" not in plain
    with pytest.raises(ValueError, match="camera 'side', which the policy does not read"):
        _prompted().observation(observation() | {"pixel_masks": {"side": _target()}})


def test_random_shift_moves_masks_and_prompts_with_the_view() -> None:
    from vlaworks.prompts import CameraPrompt

    image = np.zeros((16, 16, 3), np.uint8)
    image[5:9, 6:11] = 200
    target = image[..., 0] > 0
    obs = {
        "images": {"base": image, "wrist": image},
        "state": np.zeros(4, np.float32),
        "instruction": "pick",
        "pixel_masks": {"base": target},
        "visual_prompts": [CameraPrompt("point", "wrist", ((8.5 / 16, 7.5 / 16),))],
    }
    proc = _prompted(augment=AugmentOptions(shift=3))
    moved = 0
    for seed in range(6):
        torch.manual_seed(seed)
        row = proc.observation(obs, training=True)
        base, wrist = row["images"][0, 0], row["images"][1, 0]
        assert torch.equal(row["pixel_masks"][0], base == 200)  # the mask still covers the object
        ((x, y),) = row["visual_prompts"][0].coords
        assert wrist[int(y * 16), int(x * 16)] == 200  # the point is still on the object
        moved += not torch.equal(base, torch.from_numpy(image[..., 0]))
    assert moved


def test_annotation_inputs_follow_the_prompt_mode() -> None:
    from vlaworks.data.annotations import EpisodeAnnotation

    mask = _target().astype(np.uint8)
    annotation = EpisodeAnnotation(
        episode_index=0,
        valid=True,
        backend="oracle",
        camera="base",
        key_frame=3,
        phrase="cube",
        mask=mask,
        box=(3 / 24, 6 / 24, 15 / 24, 12 / 24),
        line=((0.2, 0.4), (0.6, 0.4)),
        points=((0.3, 0.4), (0.5, 0.4)),
    )
    expected = {
        "point": lambda e: e["visual_prompts"][0].coords[0] in annotation.points,
        "line": lambda e: e["visual_prompts"][0].coords == annotation.line,
        "box": lambda e: e["visual_prompts"][0].coords == ((3 / 24, 6 / 24), (15 / 24, 12 / 24)),
        "mask": lambda e: np.array_equal(e["visual_prompts"][0].mask, mask.astype(bool)),
        "text+mask": lambda e: np.array_equal(e["pixel_masks"]["base"], mask.astype(bool)),
        "text": lambda e: e == {},
    }
    for mode, check in expected.items():
        assert check(_prompted(prompt_mode=mode).annotation_inputs(annotation)), mode
    torch.manual_seed(0)
    mixed = _prompted()
    drawn = {tuple(sorted(mixed.annotation_inputs(annotation))) for _ in range(60)}
    assert drawn == {(), ("pixel_masks",), ("visual_prompts",)}
    discarded = EpisodeAnnotation(
        episode_index=1,
        valid=False,
        backend="oracle",
        camera="base",
        key_frame=-1,
        phrase="cube",
        mask=np.zeros_like(mask),
        reason="the gripper never closes",
    )
    assert _prompted(prompt_mode="box").annotation_inputs(discarded) == {}


def test_prompt_settings_round_trip_and_older_files_still_load() -> None:
    proc = _prompted(prompt_mode="point")
    data = json.loads(json.dumps(proc.to_dict()))
    again = PolicyProcessor.from_dict(data, proc.normalizer)
    assert again.to_dict() == data and again.prompt_mode == "point" and again.reads_visual_prompts
    assert "prompt_mode" not in processor().to_dict()  # processor.json of policies without prompts unchanged
    with pytest.raises(ValueError, match="exactly when it has a prompt_mode"):
        processor(pixel_masks=True)
