"""Typed part options: every part's options are checked against its dataclass when a
PolicyConfig is built or loaded; the on-disk format stays a plain mapping."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pytest

from vlaworks.models.backbones import BACKBONES, build_backbone, resolve_backbone
from vlaworks.models.backbones.families import family_classes
from vlaworks.models.config import PartSpec, PolicyConfig
from vlaworks.models.options import parse_options
from vlaworks.recipes import get_recipe


def config(**changes) -> PolicyConfig:
    base = dict(backbone="prismatic-tiny", head=PartSpec("query_mlp", {"mlp_width": 16}), chunk_size=2)
    return PolicyConfig(**(base | changes))


def test_unknown_backbone_option_names_the_closest_one() -> None:
    message = (
        "Unknown option 'token_merg' for backbone 'prismatic-tiny'; did you mean 'token_merge'? Options: "
        "attn_implementation, dtype, dual_encoder, image_size, keypoints, patch_size, prompt_scheme, "
        "token_merge, vision."
    )
    with pytest.raises(ValueError) as err:
        config(backbone_options={"token_merg": 2})
    assert str(err.value) == message


def test_unknown_head_and_token_source_options_are_errors_with_a_hint() -> None:
    with pytest.raises(ValueError, match="option 'mlp_widht' for head 'query_mlp'; did you mean 'mlp_width'"):
        config(head=PartSpec("query_mlp", {"mlp_widht": 8}))
    with pytest.raises(ValueError, match="option 'decimal' for head 'token'; did you mean 'decimals'"):
        config(head=PartSpec("token", {"tokenizer": "string", "decimal": 3}))
    with pytest.raises(ValueError, match="'projecter' for token source 'proprio'; did you mean 'projector'"):
        config(use_state=True, state_dim=3, token_sources=[PartSpec("proprio", {"projecter": "mlp"})])
    with pytest.raises(KeyError, match="Unknown head 'query-mlp'; did you mean 'query_mlp'"):
        config(head=PartSpec("query-mlp"))


def test_wrong_types_are_one_line_errors() -> None:
    prismatic = "of backbone 'prismatic-tiny' must be"
    cases = [
        (
            {"backbone_options": {"image_size": "64"}},
            f"Option 'image_size' {prismatic} an integer or null; got '64'.",
        ),
        (
            {"backbone_options": {"dual_encoder": 1}},
            f"Option 'dual_encoder' {prismatic} true or false; got 1.",
        ),
        (
            {"backbone_options": {"vision": "resnet"}},
            f"Option 'vision' {prismatic} one of 'dinosiglip', 'efficientnet', 'conv' or null; got 'resnet'.",
        ),
        (
            {"head": PartSpec("query_mlp", {"mlp_width": 16.0})},
            "Option 'mlp_width' of head 'query_mlp' must be an integer; got 16.0.",
        ),
        (
            {"head": PartSpec("token", {"id_range": [0, 1, 2]})},
            "Option 'id_range' of head 'token' must be a list of 2 integers or null; got [0, 1, 2].",
        ),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError) as err:
            config(**changes)
        assert str(err.value) == message and "\n" not in message


def test_options_a_family_does_not_take_are_rejected_not_swallowed() -> None:
    with pytest.raises(ValueError, match="option 'token_merge' for backbone 'qwen2.5-vl-tiny'; options:"):
        config(backbone="qwen2.5-vl-tiny", backbone_options={"token_merge": 2})
    with pytest.raises(ValueError, match="Unknown option 'prompt_scheme' for backbone 'cnn'"):
        config(backbone="cnn", backbone_options={"prompt_scheme": "full"})
    with pytest.raises(ValueError, match="belongs to tokenizer 'bins', not 'string'"):
        config(head=PartSpec("token", {"tokenizer": "string", "n_bins": 256}))


def test_hf_families_take_a_patch_size() -> None:
    backbone = build_backbone("paligemma-tiny", image_size=32, patch_size=16)
    assert backbone.model.config.vision_config.patch_size == 16
    assert backbone.model.config.vision_config.image_size == 32


def test_saved_config_round_trips_as_a_plain_mapping(tmp_path) -> None:
    original = config(
        backbone_options={"image_size": 32, "patch_size": 8, "token_merge": 2, "dual_encoder": True},
        head=PartSpec("token", {"tokenizer": "string", "decimals": 3, "id_range": [0, 64]}),
    )
    original.save(tmp_path / "config.json")
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk["backbone_options"] == original.backbone_options  # plain JSON, as given
    assert on_disk["head"]["options"] == {"tokenizer": "string", "decimals": 3, "id_range": [0, 64]}
    assert PolicyConfig.load(tmp_path / "config.json") == original
    on_disk["backbone_options"]["dual_encodr"] = on_disk["backbone_options"].pop("dual_encoder")
    (tmp_path / "config.json").write_text(json.dumps(on_disk))
    with pytest.raises(ValueError, match="did you mean 'dual_encoder'"):
        PolicyConfig.load(tmp_path / "config.json")


def test_set_overrides_are_checked_like_the_config() -> None:
    recipe = get_recipe("openvla+D")
    assert recipe.policy.backbone_options == {"dual_encoder": True}
    assert resolve_backbone(recipe.policy.backbone, recipe.policy.backbone_options).options.dual_encoder
    changed = recipe.override({"policy.backbone_options.patch_size": 8})
    assert changed.policy.backbone_options == {"dual_encoder": True, "patch_size": 8}
    with pytest.raises(ValueError, match="did you mean 'patch_size'"):
        recipe.override({"policy.backbone_options.patchsize": 8})
    with pytest.raises(ValueError, match="Unknown PolicyConfig key.*did you mean 'chunk_size'"):
        recipe.override({"policy.chunk": 8})


def test_a_folder_takes_its_family_options_and_must_agree_with_what_it_holds(tmp_path) -> None:
    build_backbone("prismatic-tiny", image_size=32, patch_size=16).save_pretrained(str(tmp_path))
    folder = str(tmp_path)
    assert config(backbone=folder, backbone_options={"image_size": 32, "patch_size": 16})
    with pytest.raises(ValueError, match=r"folder '.*' \(prismatic\); did you mean 'token_merge'"):
        config(backbone=folder, backbone_options={"token_merg": 2})
    with pytest.raises(ValueError, match="holds token_merge=1; the option token_merge=2 cannot change"):
        resolve_backbone(folder, {"token_merge": 2}).build()
    grid = r"holds a 2 x 2 patch grid per view \(image_size 32, patch_size 16\); image_size=32 / patch_size=8"
    with pytest.raises(ValueError, match=grid):
        resolve_backbone(folder, {"patch_size": 8}).build()
    with pytest.raises(ValueError, match="neither a registry name nor a checkpoint folder; did you mean"):
        resolve_backbone("prismatic-tny", {})


def test_every_family_is_one_class_in_its_own_file() -> None:
    classes = family_classes()
    assert sorted(classes) == BACKBONES.names()
    modules = [cls.__module__ for cls in classes.values()]
    assert len(set(modules)) == len(modules)
    assert classes["qwen3-vl-moe-tiny"].__module__.endswith("families.qwen3_vl_moe")


def test_parse_options_converts_json_values_and_keeps_the_rest() -> None:
    @dataclass
    class Options:
        size: tuple[int, ...] = ()
        rate: float = 0.5
        mode: Literal["a", "b"] = "a"
        flag: bool = False

    parsed = parse_options(Options, {"size": [1, 2, 3], "rate": 1, "mode": "b", "flag": True}, "part 'x'")
    assert parsed == Options(size=(1, 2, 3), rate=1.0, mode="b", flag=True) and isinstance(parsed.rate, float)
    with pytest.raises(ValueError, match="must be true or false; got 0"):
        parse_options(Options, {"flag": 0}, "part 'x'")
    with pytest.raises(ValueError, match="must be a mapping"):
        parse_options(Options, [("rate", 1.0)], "part 'x'")

    @dataclass
    class NoOptions:
        """A part without options."""

    with pytest.raises(ValueError, match="option 'dim' for part 'x'; it takes no options"):
        parse_options(NoOptions, {"dim": 3}, "part 'x'")
