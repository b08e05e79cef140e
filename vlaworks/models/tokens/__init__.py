"""Token sources and their registry (``PolicyConfig.token_sources`` names these).

A token source is one file: the source class, a dataclass of its options and
``PART = Part(Options, Source.from_config)``; registering it is one line in
:data:`TOKEN_SOURCES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlaworks.models.config import PartRegistry, PartSpec, PolicyConfig

if TYPE_CHECKING:
    from vlaworks.models.backbones.base import Backbone
    from vlaworks.models.tokens.base import TokenSource

#: token source name -> ``Part(options dataclass, builder(backbone, config, options))``
TOKEN_SOURCES = PartRegistry(
    "token source",
    {
        "pixel_aware": "vlaworks.models.tokens.pixel_aware:PART",
        "proprio": "vlaworks.models.tokens.proprio:PART",
        "seg": "vlaworks.models.tokens.seg:PART",
        "visual_prompt": "vlaworks.models.tokens.visual_prompt:PART",
    },
)


def build_token_source(spec: PartSpec, backbone: Backbone, config: PolicyConfig) -> TokenSource:
    """Build the token source named by ``spec`` for ``backbone`` and ``config``."""
    return TOKEN_SOURCES.build(spec, backbone, config)
