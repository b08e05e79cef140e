"""PokeVLA's geometry alignment (seed 001, section V-C; Spatial Forcing's recipe): a light
projector maps the VLM's last-layer vision-token states to a frozen geometry teacher's
per-patch features, trained by a cosine loss (Eq. 5). Training only: nothing of it runs at
inference.

Per sample, the image tokens of the ``"image"`` span (every view, each a square row-major
patch grid) go through the projector ``Linear(h, C) -> GELU -> Linear(C, C)`` (Spatial
Forcing's ``AlignProjector``, Xavier-initialised, ``C`` the teacher's width); the teacher
sees the same (augmented) images and its features are resampled bilinearly to each view's
token grid (:func:`~vlaworks.models.geometry.teacher.grid_features`). The loss is
``1 - cos(projected, teacher)`` averaged over tokens and samples; its weight is Spatial
Forcing's ``align_loss_coeff = 0.5`` (PokeVLA's weight is not in its text).

The teacher is never part of the policy's module tree: it is loaded on the first training
step (:func:`~vlaworks.models.geometry.teacher.load_teacher`) and held outside the
``state_dict``, so no checkpoint carries its weights and loading a policy for inference
never needs it. The projector is saved (resuming is exact) and unused by ``predict``;
``vlaworks export-policy --drop-aux`` writes a policy without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput
from vlaworks.models.config import Part, PolicyConfig
from vlaworks.models.geometry.teacher import (
    BUILTIN_TEACHER,
    GeometryTeacher,
    grid_features,
    load_teacher,
    token_grid,
)
from vlaworks.models.policy import AuxLoss

#: Spatial Forcing's ``align_loss_coeff``
ALIGN_WEIGHT = 0.5


@dataclass
class GeometryAlignOptions:
    """Options of the ``geometry_align`` aux loss."""

    #: "tabletop-depth" (the miniature teacher, trained once into the cache) or a teacher folder
    #: (``vlaworks geometry-teacher --out``, or a Hugging Face Depth Anything / DPT folder)
    teacher: str = BUILTIN_TEACHER
    #: width of the teacher's features (the projector's output); the miniature teacher's is 96
    teacher_dim: int = 96
    #: weight of the cosine loss in the total loss
    weight: float = ALIGN_WEIGHT

    def __post_init__(self) -> None:
        if self.teacher_dim < 1 or self.weight < 0:
            raise ValueError(
                "geometry_align needs teacher_dim >= 1 and weight >= 0; "
                f"got {self.teacher_dim}, {self.weight}."
            )


class GeometryAlignLoss(AuxLoss):
    """Cosine alignment of projected vision-token states to a frozen teacher (module docstring)."""

    def __init__(self, hidden_size: int, options: GeometryAlignOptions | None = None) -> None:
        super().__init__()
        options = options or GeometryAlignOptions()
        self.teacher_name, self.weight = options.teacher, options.weight
        self.teacher_dim = dim = options.teacher_dim
        self.projector = nn.Sequential(nn.Linear(hidden_size, dim), nn.GELU(), nn.Linear(dim, dim))
        for layer in (self.projector[0], self.projector[2]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        #: the frozen teacher, loaded on first use; a list keeps it out of the module tree
        self._teacher: list[GeometryTeacher] = []

    @classmethod
    def from_config(
        cls, backbone: Backbone, config: PolicyConfig, options: GeometryAlignOptions
    ) -> GeometryAlignLoss:
        """Registry builder: the projector reads the LM width."""
        return cls(backbone.hidden_size, options)

    @property
    def teacher_loaded(self) -> bool:
        return bool(self._teacher)

    def teacher(self, device: torch.device) -> GeometryTeacher:
        """The frozen teacher on ``device`` (loaded on the first call; its width checked)."""
        if not self._teacher:
            teacher = load_teacher(self.teacher_name)
            if teacher.dim != self.teacher_dim:
                raise ValueError(
                    f"Geometry teacher {self.teacher_name!r} has {teacher.dim}-dim features but the "
                    f"projector was built for {self.teacher_dim}; set geometry_align's "
                    f"teacher_dim={teacher.dim}."
                )
            self._teacher.append(teacher)
        self._teacher[0].to(device)
        return self._teacher[0]

    def targets(self, images: torch.Tensor, grid: int, device: torch.device) -> torch.Tensor:
        """The teacher's features ``[B, V * grid^2, C]`` of ``images`` on the VLA's token grid."""
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            return grid_features(self.teacher(device).features(images.to(device)), grid)

    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if "image" not in out.spans:
            raise KeyError("geometry_align needs the backbone's 'image' span (a VLM backbone).")
        states = out.hidden[:, out.spans["image"]]
        if out.image_features is not None and out.image_features.shape[1] != states.shape[1]:
            raise ValueError(
                f"The backbone's image span holds {states.shape[1]} tokens but "
                f"{out.image_features.shape[1]} image features: its views are interleaved with other "
                "tokens; geometry_align needs them contiguous."
            )
        grid = token_grid(states.shape[1], batch.images.shape[1])
        target = self.targets(batch.images, grid, states.device)
        projected = self.projector(states.to(self.projector[0].weight.dtype)).float()
        cos = F.cosine_similarity(projected, target, dim=-1)
        return 1.0 - cos.mean(), {"cos": float(cos.detach().mean())}


#: the registry entry (``AUX_LOSSES["geometry_align"]``)
PART = Part(GeometryAlignOptions, GeometryAlignLoss.from_config)
