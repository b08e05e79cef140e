"""Prismatic's vision towers record and rebuild themselves in a backbone folder's meta."""

from __future__ import annotations

import json
import typing

import pytest
import torch

from vlaworks.models.backbones import build_backbone
from vlaworks.models.backbones.families.prismatic import TOWERS, PrismaticOptions
from vlaworks.models.vision.conv import ConvFeaturizer
from vlaworks.models.vision.featurizer import DinoSigLIPFeaturizer


@pytest.mark.parametrize("tower", [DinoSigLIPFeaturizer, ConvFeaturizer])
def test_a_tower_rebuilds_its_architecture_from_the_meta_it_writes(tower):
    built = tower.tiny(32, 8, "eager")
    meta = json.loads(json.dumps(built.folder_meta()))  # through JSON, as a folder stores it
    assert tower.holds(meta) and [t for t in TOWERS.values() if t.holds(meta)] == [tower]
    assert tower.folder_grid(meta) == (32, 8)
    rebuilt = tower.from_folder_meta(meta)
    assert rebuilt.folder_meta() == built.folder_meta()
    shapes = {k: v.shape for k, v in built.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert rebuilt(images).shape == built(images).shape == (2, 16, built.out_dim)


def test_an_unknown_tower_name_or_folder_is_refused_with_the_known_ones(tmp_path):
    named = typing.get_args(typing.get_args(typing.get_type_hints(PrismaticOptions)["vision"])[0])
    assert set(named) == set(TOWERS)  # every name the option takes builds a tower
    with pytest.raises(ValueError, match="'vision' .* one of 'dinosiglip', 'efficientnet', 'conv'"):
        build_backbone("prismatic-tiny", image_size=32, patch_size=8, vision="resnet")
    build_backbone("prismatic-tiny", image_size=32, patch_size=8).save_pretrained(str(tmp_path))
    meta = json.loads((tmp_path / "vlaworks_backbone.json").read_text())
    for key in ("dinov2", "siglip"):
        meta.pop(key)
    (tmp_path / "vlaworks_backbone.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="records no vision tower"):
        build_backbone(str(tmp_path))
