"""VLDataset: materialisation, view filling, npz cache, VL batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlaworks.data.vl import VLDataset
from vlaworks.processing import collate


def fake_samples(n: int = 3, size: int = 24) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
            "prompt": f"Point to object {i}.",
            "answer": f"({i / 10:.2f}, 0.50)",
            "kind": "point",
        }
        for i in range(n)
    ]


def test_items_put_the_image_in_view_zero_and_black_elsewhere() -> None:
    samples = fake_samples()
    data = VLDataset.from_samples(samples, cameras=("base", "wrist"))
    item = data[1]
    assert item["images"].shape == (2, 3, 24, 24) and item["images"].dtype == torch.uint8
    assert torch.equal(item["images"][0], torch.from_numpy(samples[1]["image"]).permute(2, 0, 1))
    assert not item["images"][1].any()
    assert (item["prompt"], item["answer"], item["kind"]) == ("Point to object 1.", "(0.10, 0.50)", "point")


def test_collate_gives_a_vl_batch_resized_to_the_policy_size() -> None:
    data = VLDataset.from_samples(fake_samples(), image_size=16)
    batch = collate([data[0], data[2]])
    assert batch.is_vl and batch.actions is None
    assert batch.images.shape == (2, 1, 3, 16, 16)
    assert batch.instructions == batch.vl_prompt == ["Point to object 0.", "Point to object 2."]
    assert batch.vl_answer == ["(0.00, 0.50)", "(0.20, 0.50)"]
    assert batch.meta["kind"] == ["point", "point"]


def test_save_load_round_trip(tmp_path) -> None:
    data = VLDataset.from_samples(fake_samples())
    data.meta = {"n": 3}
    data.save(tmp_path / "vl.npz")
    back = VLDataset.load(tmp_path / "vl.npz", cameras=("base",))
    assert np.array_equal(back.images, data.images)
    assert (back.prompts, back.answers, back.kinds, back.meta) == (
        data.prompts, data.answers, data.kinds, data.meta
    )


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="uint8"):
        VLDataset(np.zeros((2, 8, 8, 3), np.float32), ["a", "b"], ["c", "d"])
    with pytest.raises(ValueError, match="one of each"):
        VLDataset(np.zeros((2, 8, 8, 3), np.uint8), ["a"], ["c", "d"])
    with pytest.raises(KeyError, match="answer"):
        VLDataset.from_samples([{"image": np.zeros((4, 4, 3), np.uint8), "prompt": "x"}])
    with pytest.raises(ValueError, match="different camera"):
        collate([{**VLDataset.from_samples(fake_samples())[0]}, {
            **VLDataset.from_samples(fake_samples(), cameras=("base", "wrist"))[0]}])


def test_generate_renders_the_sim_samples_once_and_reuses_the_cache(tmp_path) -> None:
    cache = tmp_path / "vl.npz"
    first = VLDataset.generate(3, seed=1, render_size=48, cache=cache)
    assert len(first) == 3 and first.images.shape == (3, 48, 48, 3)
    assert all(p and a for p, a in zip(first.prompts, first.answers, strict=True))
    mtime = cache.stat().st_mtime_ns
    again = VLDataset.generate(3, seed=1, render_size=48, cache=cache)
    assert cache.stat().st_mtime_ns == mtime
    assert again.answers == first.answers and np.array_equal(again.images, first.images)
