"""Action heads and their registry (``PolicyConfig.head.type`` names one of these).

A head is one file: the head class, a dataclass of its options and ``PART = Part(Options,
Head.from_config)``; registering it is one line in :data:`HEADS`. ``flow`` is π0's
flow-matching action expert, ``parallel_l1`` OpenVLA-OFT's parallel decoding (zero action
placeholders in one bidirectional block, MLP ResNet, L1), ``pokevla_expert`` PokeVLA's action
expert (action queries decoded in parallel, then latents attending to them, to the visual
states and to ``<SEG>``), ``query_mlp`` VLM4VLA's ``<ActionQuery>`` MLP, ``resnet_decoder``
PixelVLA's continuous action decoder (L1), ``token`` the autoregressive token head
(``tokenizer="bins" | "string" | "fast"``); a FAST head must be fitted on the training
actions before training, which :meth:`vlaworks.models.policy.VLAPolicy.prepare` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlaworks.models.config import PartRegistry, PartSpec, PolicyConfig

if TYPE_CHECKING:
    from vlaworks.models.backbones.base import Backbone
    from vlaworks.models.heads.base import ActionHead

#: head name -> ``Part(options dataclass, builder(backbone, config, options))``
HEADS = PartRegistry(
    "head",
    {
        "flow": "vlaworks.models.heads.flow:PART",
        "parallel_l1": "vlaworks.models.heads.parallel_l1:PART",
        "pokevla_expert": "vlaworks.models.heads.pokevla_expert:PART",
        "query_mlp": "vlaworks.models.heads.query_mlp:PART",
        "resnet_decoder": "vlaworks.models.heads.resnet_decoder:PART",
        "token": "vlaworks.models.heads.token.head:PART",
    },
)


def build_head(spec: PartSpec, backbone: Backbone, config: PolicyConfig) -> ActionHead:
    """Build the head named by ``spec`` for ``backbone`` (its width, tokenizer) and ``config``."""
    return HEADS.build(spec, backbone, config)
