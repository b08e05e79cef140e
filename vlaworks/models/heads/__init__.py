"""Action heads and their registry (``PolicyConfig.head.type`` names one of these).

``token`` is the autoregressive token head (``tokenizer="bins" | "string" | "fast"``); a
FAST head must be fitted on the training actions before training, which
:meth:`vlaworks.models.policy.VLAPolicy.prepare` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlaworks.models.config import PartRegistry, PartSpec, PolicyConfig

if TYPE_CHECKING:
    from vlaworks.models.backbones.base import Backbone
    from vlaworks.models.heads.base import ActionHead

HEADS = PartRegistry(
    "head",
    {
        "flow": "vlaworks.models.heads.flow:FlowMatchingHead.from_config",
        "query_mlp": "vlaworks.models.heads.query_mlp:QueryMLPHead.from_config",
        "token": "vlaworks.models.heads.token.head:TokenActionHead.from_config",
    },
)


def build_head(spec: PartSpec, backbone: Backbone, config: PolicyConfig) -> ActionHead:
    """Build the head named by ``spec`` for ``backbone`` (its width, tokenizer) and ``config``."""
    return HEADS.resolve(spec.type)(backbone, config, **spec.options)
