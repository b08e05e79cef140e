"""Grounding scores on held-out demos: the mask IoU of a ``<SEG>`` policy (per view and stage,
cumulative and per frame, after a save / load round trip) and the centroid error of a
``target_point`` policy (zero for the true centroids, the floor for the view's centre)."""

from __future__ import annotations

import math

import pytest
import torch

from vlaworks.data.lerobot import LeRobotDataset
from vlaworks.data.normalize import Normalizer
from vlaworks.eval.masks import mask_iou, point_error
from vlaworks.models.checkpoint import save_policy
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.policy import build_policy

SIZE = 32
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from vlaworks.sim.generate import generate

    out = tmp_path_factory.mktemp("masks") / "data"
    generate(["spatial"], episodes=1, out=out, image_size=SIZE, layout="fixed", segmentation=True)
    return out


def _policy(demos, aux: str = "seg_mask"):
    torch.manual_seed(0)
    sources, losses = {
        "seg_mask": ([PartSpec("seg")], [PartSpec("seg_mask", {"grid": 4, "width": 32, "heads": 2})]),
        "target_point": ([], [PartSpec("target_point")]),
    }[aux]
    config = PolicyConfig(
        backbone="prismatic-tiny",
        head=PartSpec("query_mlp", {"mlp_width": 32}),
        chunk_size=2,
        backbone_options={"image_size": SIZE, "patch_size": 16},
        cameras=("base", "wrist"),
        image_size=SIZE,
        token_sources=sources,
        aux_losses=losses,
    )
    return build_policy(config, Normalizer(LeRobotDataset(demos).stats, keys=("action",)))


def test_iou_per_view_and_stage_after_a_round_trip(demos, tmp_path) -> None:
    policy = _policy(demos)
    save_policy(policy, tmp_path / "policy")
    result = mask_iou(tmp_path / "policy", demos, every=5)
    assert result["mask_size"] == 16 and result["frames"] == math.ceil(LeRobotDataset(demos).num_frames / 5)
    assert set(result["views"]) == {"base", "wrist"}
    assert result["views"]["base"]["visible"] == 1.0
    for view in result["views"].values():
        for stage in ("coarse", "fine"):
            assert 0.0 <= view[stage]["ciou"] <= 1.0
    assert result == mask_iou(policy, demos, every=5)  # the saved policy predicts the same masks


def test_perfect_and_empty_masks_score_one_and_zero(demos, monkeypatch) -> None:
    policy = _policy(demos)
    (aux,) = policy.aux_losses

    def perfect(out, batch):
        logits = torch.where(aux.target(batch), 10.0, -10.0)
        return logits, torch.full_like(logits, -10.0)  # coarse perfect, fine empty

    monkeypatch.setattr(aux, "masks", perfect)
    result = mask_iou(policy, demos, every=3)
    for view in result["views"].values():
        if view["visible"] > 0:
            assert view["coarse"] == {"ciou": 1.0, "giou": 1.0}
            assert view["fine"] == {"ciou": 0.0, "giou": 0.0}
    (instruction,) = LeRobotDataset(demos).tasks.values()  # one episode, one instruction
    assert set(result["instructions"]) == {instruction}
    assert result["instructions"][instruction]["base"] == {"coarse": 1.0, "fine": 0.0}


def test_iou_per_instruction_sums_each_instructions_frames(demos, monkeypatch) -> None:
    policy = _policy(demos)
    (aux,) = policy.aux_losses
    first = LeRobotDataset(demos).tasks[0]

    def right_for_the_first_instruction(out, batch):  # perfect masks for one instruction, empty otherwise
        hit = torch.tensor([text == first for text in batch.instructions])[:, None, None, None]
        logits = torch.where(aux.target(batch) & hit, 10.0, -10.0)
        return logits, logits

    monkeypatch.setattr(aux, "masks", right_for_the_first_instruction)
    monkeypatch.setattr(
        "vlaworks.eval.masks.WindowDataset.observation",
        _renamed_half(first),
    )
    per = mask_iou(policy, demos, every=1)["instructions"]
    assert set(per) == {first, "other words"}
    assert per[first]["base"] == {"coarse": 1.0, "fine": 1.0}
    assert per["other words"]["base"] == {"coarse": 0.0, "fine": 0.0}


def _renamed_half(first: str):
    """WindowDataset.observation with every odd frame's instruction replaced."""
    from vlaworks.data.dataset import WindowDataset

    original = WindowDataset.observation

    def observation(self, episode, t):
        obs = original(self, episode, t)
        return {**obs, "instruction": "other words" if t % 2 else first}

    return observation


def test_a_policy_without_the_mask_decoder_is_refused(demos) -> None:
    config = PolicyConfig(
        backbone="prismatic-tiny", head=PartSpec("query_mlp", {"mlp_width": 32}), chunk_size=2,
        backbone_options={"image_size": SIZE, "patch_size": 16}, image_size=SIZE,
    )
    with pytest.raises(ValueError, match="seg_mask aux loss"):
        mask_iou(build_policy(config), demos)


def test_point_error_is_zero_for_the_true_centroids_and_the_floor_for_the_centre(demos, monkeypatch) -> None:
    from vlaworks.models.aux.point import mask_centroids

    policy = _policy(demos, "target_point")
    (aux,) = policy.aux_losses
    truth: list = []

    def answer(centroids):
        def predict(out):
            centre, seen = mask_centroids(truth[-1])
            return (centre if centroids else torch.zeros_like(centre)), torch.where(seen, 5.0, -5.0)

        return predict

    def keep_masks(batch):  # the scored batch's masks, read by the patched predict
        truth.append(batch.target_masks)

    monkeypatch.setattr(policy.head, "extra_tokens", _spy(policy.head.extra_tokens, keep_masks))
    monkeypatch.setattr(aux, "predict", answer(True))
    exact = point_error(policy, demos, every=3)
    monkeypatch.setattr(aux, "predict", answer(False))
    centre = point_error(policy, demos, every=3)
    assert exact["frames"] == math.ceil(LeRobotDataset(demos).num_frames / 3)
    for camera, view in exact["views"].items():
        assert view["vis_acc"] == 1.0
        if view["visible"] > 0:
            assert view["l1_px"] == pytest.approx(0.0, abs=1e-5)
            assert centre["views"][camera]["l1_px"] == pytest.approx(view["l1_px_centre"], rel=1e-5)
    assert exact["views"]["base"]["visible"] == 1.0 and exact["views"]["base"]["l1_px_centre"] > 0


def _spy(method, record):
    """``method`` that first passes its batch to ``record``."""

    def wrapped(batch, *args, **kwargs):
        record(batch)
        return method(batch, *args, **kwargs)

    return wrapped


def test_point_error_refuses_a_policy_without_the_loss(demos) -> None:
    policy = _policy(demos)  # a seg_mask policy
    with pytest.raises(ValueError, match="needs a policy trained with the target_point"):
        point_error(policy, demos)
