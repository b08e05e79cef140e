"""Token sources and their registry (``PolicyConfig.token_sources`` names these)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlaworks.models.config import PartRegistry, PartSpec, PolicyConfig

if TYPE_CHECKING:
    from vlaworks.models.backbones.base import Backbone
    from vlaworks.models.tokens.base import TokenSource

TOKEN_SOURCES = PartRegistry(
    "token source",
    {
        "proprio": "vlaworks.models.tokens.proprio:ProprioTokens.from_config",
    },
)


def build_token_source(spec: PartSpec, backbone: Backbone, config: PolicyConfig) -> TokenSource:
    """Build the token source named by ``spec`` for ``backbone`` and ``config``."""
    return TOKEN_SOURCES.resolve(spec.type)(backbone, config, **spec.options)
