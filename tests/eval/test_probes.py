"""Linear probes of vision features: the probe itself, probe samples, features, reports."""

import numpy as np
import pytest
import torch

from vlaworks.eval.probes import (
    ProbeRow,
    compare_probes,
    extract_features,
    feature_sets,
    initial_backbone,
    linear_probe,
    mask_weights,
    probe_classes,
    probe_labels,
    probe_policy,
    probe_references,
    probe_rows,
    run_probe_comparison,
    train_test_samples,
    write_probe_report,
)
from vlaworks.models.backbones import build_backbone
from vlaworks.models.vision.dual import is_dual, make_dual_encoder
from vlaworks.sim.probe_data import probe_samples

torch.set_num_threads(1)


def _clusters(n: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3.0, (classes, dim))
    labels = rng.integers(0, classes, n)
    return centres[labels] + rng.normal(0, 0.5, (n, dim)), labels


def test_probe_separates_separable_features():
    x_train, y_train = _clusters(200, 5, 16, 0)
    x_test, y_test = _clusters(100, 5, 16, 1)
    assert linear_probe(x_train, y_train, x_test, y_test) >= 0.98


def test_probe_on_random_labels_is_near_chance():
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    y_train, y_test = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    acc = linear_probe(x_train, y_train, x_test, y_test)
    assert 0.1 < acc < 0.4


def test_probe_is_deterministic_and_checks_shapes():
    x, y = _clusters(60, 3, 4, 2)
    assert linear_probe(x[:40], y[:40], x[40:], y[40:]) == linear_probe(x[:40], y[:40], x[40:], y[40:])
    with pytest.raises(ValueError, match="same C"):
        linear_probe(x[:40], y[:40], x[40:, :2], y[40:])
    with pytest.raises(ValueError, match="differ in length"):
        linear_probe(x[:40], y[:39], x[40:], y[40:])


def test_mask_weights_cover_the_right_patches():
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, :16, :16] = True
    mask[0, 16:24, 16:] = True
    assert mask_weights(mask, 4).tolist() == [[1.0, 0.0, 0.0, 0.5]]
    with pytest.raises(ValueError, match="square"):
        mask_weights(mask, 6)


@pytest.fixture(scope="module")
def samples():
    return probe_samples(24, seed=3, image_size=48)


def test_labels_follow_the_probe_classes(samples):
    idx, labels = probe_labels(samples, "color")
    colors = probe_classes()["color"]
    assert len(idx) and all(samples[i].color == colors[y] for i, y in zip(idx, labels, strict=True))
    _, kinds = probe_labels(samples, "kind")
    assert len(kinds) == len(samples)
    with pytest.raises(ValueError, match="Unknown probe task"):
        probe_labels(samples, "size")


def test_train_and_test_scenes_come_from_disjoint_streams():
    train, test = train_test_samples(3, 3, seed=1, image_size=32)
    assert len(train) == len(test) == 3
    assert not any(np.array_equal(a.image, b.image) for a in train for b in test)


def test_extract_features_shape_determinism_and_dual_halves(samples):
    torch.manual_seed(0)
    backbone = build_backbone("prismatic-tiny", image_size=32)
    feats = extract_features(backbone, samples)
    assert feats.shape == (24, backbone.featurizer.out_dim) and feats.dtype == np.float32
    assert np.array_equal(feats, extract_features(backbone, samples, batch_size=5))
    assert set(feature_sets(backbone, feats)) == {"vision"}
    make_dual_encoder(backbone)
    dual = extract_features(backbone, samples)
    sets = feature_sets(backbone, dual)
    assert set(sets) == {"frozen", "trained", "joint"}
    np.testing.assert_allclose(sets["frozen"], feats, atol=1e-5)  # both copies start identical
    np.testing.assert_allclose(sets["trained"], feats, atol=1e-5)


@pytest.fixture(scope="module")
def dual_policy():
    from vlaworks.data.normalize import Normalizer
    from vlaworks.models.config import PartSpec, PolicyConfig
    from vlaworks.models.policy import build_policy

    config = PolicyConfig(
        backbone="prismatic-tiny",
        backbone_options={"image_size": 32, "dual_encoder": True},
        head=PartSpec("query_mlp", {"mlp_width": 16}),
        chunk_size=2,
        image_size=32,
    )
    bounds = {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [-1.0] * 7, "max": [1.0] * 7}
    torch.manual_seed(0)
    return build_policy(config, normalizer=Normalizer({"action": bounds}, keys=("action",)))


def test_probe_policy_reports_each_half_and_task(dual_policy):
    result = probe_policy(dual_policy, n_train=16, n_test=8, seed=0, image_size=48)
    assert set(result) == {"frozen", "trained", "joint"}
    for tasks in result.values():
        assert set(tasks) <= {"color", "kind"} and "kind" in tasks
        assert all(0.0 <= acc <= 1.0 for acc in tasks.values())


def test_initial_backbone_is_the_single_encoder_backbone(dual_policy):
    before = initial_backbone(dual_policy)
    assert is_dual(dual_policy.backbone) and not is_dual(before)
    again = initial_backbone(dual_policy)
    assert all(torch.equal(a, b) for a, b in zip(before.parameters(), again.parameters(), strict=True))


def test_compare_and_report(tmp_path):
    before = {"vision": {"color": 0.8, "kind": 0.6}}
    after = {"frozen": {"color": 0.8}, "trained": {"color": 0.5, "kind": 0.7}}
    rows = compare_probes(before, after)
    trained = [r for r in rows if r["features"] == "trained"]
    assert [(r["task"], r["before"], r["after"]) for r in trained] == [
        ("color", 0.8, 0.5),
        ("kind", 0.6, 0.7),
    ]
    assert trained[0]["delta"] == pytest.approx(-0.3)
    text = write_probe_report(rows, tmp_path / "cmp.md").read_text()
    assert "| trained | color | 80.0% | 50.0% | -30.0 pt |" in text
    flat = probe_rows("after", after)
    assert ProbeRow("after", "trained", "kind", 0.7) in flat
    text = write_probe_report(flat, tmp_path / "flat.md").read_text()
    assert "| after | frozen | color | 80.0% |" in text
    with pytest.raises(ValueError, match="no rows"):
        write_probe_report([], tmp_path / "x.md")


def test_references_frame_the_probe(samples):
    refs = probe_references(samples[:16], samples[16:])
    assert set(refs) == {"pixels", "majority"}
    for tasks in refs.values():
        assert "kind" in tasks and all(0.0 <= acc <= 1.0 for acc in tasks.values())
    _, train_kinds = probe_labels(samples[:16], "kind")
    _, test_kinds = probe_labels(samples[16:], "kind")
    assert refs["majority"]["kind"] == np.mean(test_kinds == np.bincount(train_kinds).argmax())


def test_run_probe_comparison_from_a_checkpoint_writes_the_report(dual_policy, tmp_path):
    from vlaworks.models.checkpoint import save_policy

    folder = save_policy(dual_policy, tmp_path / "ckpt")
    result = run_probe_comparison(folder, tmp_path / "probe.md", n_train=12, n_test=6, image_size=48)
    assert set(result["before"]) == {"vision"} and set(result["after"]) == {"frozen", "trained", "joint"}
    # at initialisation the frozen half is the backbone the policy was built from
    assert result["after"]["frozen"] == result["after"]["trained"]
    text = (tmp_path / "probe.md").read_text()
    assert "| frozen | kind |" in text and "| reference | pixels | kind |" in text


def test_starting_features_is_the_vision_set_else_the_only_one():
    from vlaworks.eval.probes import starting_features

    assert starting_features({"vision": {"kind": 0.5}, "other": {"kind": 0.1}}) == {"kind": 0.5}
    assert starting_features({"projected": {"kind": 0.3}}) == {"kind": 0.3}
    with pytest.raises(ValueError, match="'before' is empty"):
        compare_probes({}, {"vision": {"kind": 0.5}})
