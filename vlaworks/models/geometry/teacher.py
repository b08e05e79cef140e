"""Frozen geometry teachers: images -> per-patch geometry features (seed 001, section V-C).

PokeVLA aligns the VLA's last-layer vision-token states with VGGT's features during
training only. A teacher here is a frozen module with one method,
:meth:`GeometryTeacher.features`: ``[B, V, 3, H, W]`` uint8 images -> ``[B, V, C, h, w]``
per-patch features (``C`` = :attr:`GeometryTeacher.dim`), all views of a sample at once.

Two kinds load from a folder (:func:`load_teacher`):

* :class:`GeometryNet`, the miniature world's teacher (``geometry_teacher.json`` +
  ``model.safetensors``): a conv stem to 1/8 resolution, a transformer over the patches of
  *all views jointly* (VGGT's global attention; no view embedding, so any number of views
  in any order) whose outputs are the features, and a head that regresses each pixel's
  log-depth and world point (x, y, z) from those features alone (a per-patch MLP to its
  8 x 8 pixels, pixel-shuffled; no skip connections: the geometry must pass through the
  features). ``vlaworks geometry-teacher`` trains it once on
  frames of the tabletop world (:mod:`vlaworks.train.geometry_teacher`);
* :class:`HFDepthTeacher`, a Hugging Face ViT depth model (``transformers`` has no VGGT;
  its ViT geometry models are Depth Anything v1 / v2 and DPT, ``model_type``
  ``depth_anything`` / ``dpt``): the last hidden layer's patch tokens (class and register
  tokens dropped) on images resized to the model's input size and normalised with its
  processor's mean / std. Views are encoded independently.

The name :data:`BUILTIN_TEACHER` stands for the miniature teacher trained with the default
settings; :func:`resolve_teacher_folder` finds it in the cache and trains it there on first
use.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

#: the folder file of a :class:`GeometryNet`
TEACHER_FILE = "geometry_teacher.json"
WEIGHTS_FILE = "model.safetensors"
#: the miniature world's teacher, trained once with the default settings and cached
BUILTIN_TEACHER = "tabletop-depth"
#: Hugging Face depth models whose last hidden layer is a ViT patch grid
HF_MODEL_TYPES = ("depth_anything", "dpt")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GeometryTeacher(nn.Module, ABC):
    """A frozen image -> per-patch geometry feature map."""

    #: channels of the features
    dim: int

    @abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, H, W]`` uint8 -> ``[B, V, dim, h, w]`` float features."""


@dataclass
class GeometryNetConfig:
    """Architecture of :class:`GeometryNet` (written to ``geometry_teacher.json``)."""

    #: input size the net was trained at (images are resized to it)
    image_size: int = 64
    #: feature channels (the transformer width)
    width: int = 96
    #: transformer layers over all views' patches
    layers: int = 2
    heads: int = 4


def sincos_2d(h: int, w: int, dim: int, device: torch.device) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings ``[h * w, dim]`` (row-major)."""
    if dim % 4:
        raise ValueError(f"2-D sine-cosine positions need a width divisible by 4; got {dim}.")
    freq = 1.0 / (10000 ** (torch.arange(dim // 4, device=device, dtype=torch.float32) / (dim // 4)))
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    ay, ax = ys.flatten()[:, None] * freq, xs.flatten()[:, None] * freq
    return torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU())


class GeometryNet(GeometryTeacher):
    """The miniature world's depth / point-map network (module docstring)."""

    def __init__(self, config: GeometryNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeometryNetConfig()
        if config.image_size % 8:
            raise ValueError(f"GeometryNet image_size must be a multiple of 8; got {config.image_size}.")
        width = self.dim = config.width
        self.stem = nn.Sequential(_conv(3, 32, 2), _conv(32, 64, 2), nn.Conv2d(64, width, 3, 2, 1))
        layer = nn.TransformerEncoderLayer(
            width, config.heads, 2 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        #: per patch: its 8 x 8 pixels' log-depth and world point (4 x 64 values, pixel-shuffled)
        self.decoder = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, 4 * 64))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3, H, W]`` uint8 -> features ``[B, V, dim, H/8, W/8]`` at the net's input size."""
        b, v = images.shape[:2]
        size = self.config.image_size
        x = images.flatten(0, 1).to(self.norm.weight.device, torch.float32) / 255.0
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        grid = self.stem((x - 0.5) / 0.25)
        g = grid.shape[-1]
        tokens = grid.flatten(2).transpose(1, 2) + sincos_2d(g, g, self.dim, grid.device)
        tokens = self.norm(self.encoder(tokens.reshape(b, v * g * g, self.dim)))
        return tokens.view(b, v, g, g, self.dim).permute(0, 1, 4, 2, 3)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode(images)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, log-depth ``[B, V, S, S]`` and world points ``[B, V, 3, S, S]`` (``S`` the
        input size)."""
        feats = self.encode(images)
        per_patch = self.decoder(feats.flatten(0, 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        out = F.pixel_shuffle(per_patch, 8).unflatten(0, feats.shape[:2])
        return feats, out[:, :, 0], out[:, :, 1:]

    def save(self, folder: str | Path) -> Path:
        """Write ``geometry_teacher.json`` and ``model.safetensors`` to ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        (out / TEACHER_FILE).write_text(json.dumps({"kind": "geometry_net", **asdict(self.config)}, indent=1))
        save_model(self, str(out / WEIGHTS_FILE))
        return out


class HFDepthTeacher(GeometryTeacher):
    """A Hugging Face Depth Anything / DPT model's last-layer patch tokens (module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        image_size: int,
        patch_size: int,
        dim: int,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"Teacher image size {image_size} must be a multiple of its patch {patch_size}.")
        self.model, self.image_size, self.patch_size, self.dim = model, image_size, patch_size, dim
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> HFDepthTeacher:
        """Load a local ``transformers`` depth-estimation folder of a supported ``model_type``."""
        from transformers import AutoModelForDepthEstimation

        path = Path(folder)
        config = json.loads((path / "config.json").read_text())
        kind = config.get("model_type")
        if kind not in HF_MODEL_TYPES:
            raise ValueError(
                f"{path} holds a {kind!r} model; the geometry teacher loads Hugging Face {HF_MODEL_TYPES} "
                "depth models (transformers has no VGGT) or a folder written by `vlaworks geometry-teacher`."
            )
        model = AutoModelForDepthEstimation.from_pretrained(str(path))
        vit = model.config.backbone_config if kind == "depth_anything" else model.config
        patch = model.config.patch_size if kind == "depth_anything" else vit.patch_size
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        processor = path / "preprocessor_config.json"
        if processor.exists():
            settings = json.loads(processor.read_text())
            mean = tuple(settings.get("image_mean", mean))
            std = tuple(settings.get("image_std", std))
        return cls(model, int(vit.image_size), int(patch), int(vit.hidden_size), mean, std)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        b, v = images.shape[:2]
        x = images.flatten(0, 1).to(self.mean.device, torch.float32) / 255.0
        x = F.interpolate(x, size=(self.image_size,) * 2, mode="bicubic", align_corners=False).clamp(0, 1)
        out = self.model(pixel_values=(x - self.mean) / self.std, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        g = self.image_size // self.patch_size
        patches = hidden[:, -g * g :]  # class (and register) tokens come first
        return patches.transpose(1, 2).reshape(b, v, self.dim, g, g)


def resolve_teacher_folder(teacher: str) -> Path:
    """The folder ``teacher`` names: :data:`BUILTIN_TEACHER` (the cached miniature teacher,
    trained there on first use) or a folder path."""
    if teacher == BUILTIN_TEACHER:
        from vlaworks.train.geometry_teacher import cached_teacher

        return cached_teacher()
    folder = Path(teacher)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Geometry teacher {teacher!r} is neither {BUILTIN_TEACHER!r} nor a folder; train one with "
            "`vlaworks geometry-teacher --out DIR` or pass a Hugging Face depth model folder."
        )
    return folder


def load_teacher(teacher: str) -> GeometryTeacher:
    """The frozen teacher ``teacher`` names (:func:`resolve_teacher_folder`), in eval mode:
    a :class:`GeometryNet` folder or a Hugging Face depth-estimation folder."""
    folder = resolve_teacher_folder(teacher)
    if (folder / TEACHER_FILE).exists():
        meta = json.loads((folder / TEACHER_FILE).read_text())
        meta.pop("kind")
        model: GeometryTeacher = GeometryNet(GeometryNetConfig(**meta))
        load_model(model, str(folder / WEIGHTS_FILE))
    elif (folder / "config.json").exists():
        model = HFDepthTeacher.from_pretrained(folder)
    else:
        raise FileNotFoundError(
            f"{folder} holds no geometry teacher: expected {TEACHER_FILE} (vlaworks geometry-teacher) or a "
            "Hugging Face config.json."
        )
    return model.eval().requires_grad_(False)


def grid_features(features: torch.Tensor, grid: int) -> torch.Tensor:
    """``[B, V, C, h, w]`` teacher features resampled (bilinear) to the VLA's ``grid x grid``
    token grid per view, as tokens ``[B, V * grid^2, C]`` in row-major order per view."""
    b, v, c = features.shape[:3]
    x = features.flatten(0, 1).float()
    if x.shape[-2:] != (grid, grid):
        x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    return x.reshape(b, v, c, grid * grid).transpose(2, 3).reshape(b, v * grid * grid, c)


def token_grid(n_tokens: int, views: int) -> int:
    """Side of the square per-view token grid of ``n_tokens`` image tokens over ``views`` views."""
    per_view, rest = divmod(n_tokens, views)
    side = math.isqrt(per_view)
    if rest or side * side != per_view:
        raise ValueError(
            f"{n_tokens} image tokens over {views} views are not square grids per view; geometry "
            "alignment needs each view's image tokens as one square patch grid."
        )
    return side
