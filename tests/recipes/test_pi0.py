"""The pi0 recipe's instruction augmentation: on in pi0 only, settable with --set, saved and
reloaded with the policy; configs saved before the option existed still load."""

from __future__ import annotations

import json

import pytest

from vlaworks.cli import _parse_sets
from vlaworks.models.config import PolicyConfig
from vlaworks.processing import PolicyProcessor
from vlaworks.recipes import get_recipe
from vlaworks.recipes.pi0 import INSTRUCTION_AUGMENT


def test_pi0_rewords_instructions_and_pi0_plus_does_not() -> None:
    assert get_recipe("pi0").policy.augment.instructions == INSTRUCTION_AUGMENT == 0.5
    # seed 004 trains pi0+ without instruction augmentation; seed 000's PixelVLA-pi0 mentions none
    for name in ("pi0+", "pixelvla-pi0"):
        assert get_recipe(name).policy.augment.instructions == 0.0
        assert not get_recipe(name).policy.augment.enabled


def test_set_option_round_trips_through_the_saved_config(tmp_path) -> None:
    changes = _parse_sets(["policy.augment.instructions=0.25", "policy.augment.shift=2"])
    config = get_recipe("pi0").override(changes).policy
    assert (config.augment.instructions, config.augment.shift) == (0.25, 2)
    config.save(tmp_path / "config.json")
    assert PolicyConfig.load(tmp_path / "config.json") == config
    processor = PolicyProcessor.from_config(config)
    again = PolicyProcessor.from_dict(json.loads(json.dumps(processor.to_dict())))
    assert again.augment is not None and again.augment.instructions == 0.25
    off = get_recipe("pi0").override({"policy.augment.instructions": 0}).policy
    assert not off.augment.enabled and PolicyProcessor.from_config(off).augment is None


def test_configs_saved_without_the_option_still_load() -> None:
    data = get_recipe("vlm4vla").policy.to_dict()
    del data["augment"]["instructions"]
    assert PolicyConfig.from_dict(data).augment.instructions == 0.0
    old_processor = {"cameras": ["base"], "image_size": 32, "chunk_size": 4, "use_state": False,
                     "augment": {"shift": 4, "brightness": 0.0, "contrast": 0.0}}
    processor = PolicyProcessor.from_dict(old_processor)
    assert processor.augment is not None and processor.augment.instructions == 0.0


def test_out_of_range_probability_from_the_cli_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"augment.instructions .* \[0, 1\]"):
        get_recipe("pi0").override(_parse_sets(["policy.augment.instructions=2"]))
