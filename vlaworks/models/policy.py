"""The policy core: backbone + token sources + head (+ auxiliary losses).

``VLAPolicy`` is the only model class; recipes differ in the parts the
:class:`~vlaworks.models.config.PolicyConfig` names, never in this code.

* training: ``forward(batch) -> (loss, metrics)`` = token sources' blocks + the head's
  blocks -> backbone -> ``head.loss`` (+ weighted auxiliary losses);
* vision-language batches (``Batch.is_vl``, seed 004 III-C co-training): ``forward`` runs
  the backbone on the images with ``vl_prompt`` as the instruction and the teacher-forced
  answer ids as one causal block, and returns next-token cross-entropy on the answer span
  through the backbone's own LM head (:meth:`VLAPolicy.text_loss`). With a string-token
  head robot and VL batches thus share one objective on one vocabulary; with any other
  head VL batches still train the LM (and vision) through this text loss, so co-training
  works with every head. :meth:`VLAPolicy.answer` is the matching greedy text decoder
  (KV-cached) for VQA accuracy;
* before training, :meth:`VLAPolicy.prepare` fits data-dependent action tokenizers (FAST)
  on normalised training chunks; ``vlaworks.recipes.training.prepare_policy`` calls it;
* inference: ``predict(batch)`` -> normalised chunk ``[B, T, 7]``; ``predict_chunk`` takes
  env observations (``vlaworks/envs/base.py``) and returns raw env actions through the
  policy's :class:`~vlaworks.processing.PolicyProcessor` (the same step that made the
  training windows), so it satisfies :class:`vlaworks.policy_api.ChunkPolicy`.

Trainability (freezing, LoRA, from-scratch re-initialisation) and the seed 004 dual vision
encoder (``backbone_options["dual_encoder"] = True``, see ``vlaworks.models.vision.dual``)
are applied here from the config so that a checkpoint rebuilds exactly the same module tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from vlaworks.batch import Batch
from vlaworks.models.backbones.base import Backbone, BackboneOutput, ExtraTokens
from vlaworks.models.config import PartRegistry, PolicyConfig
from vlaworks.models.heads import build_head
from vlaworks.models.heads.base import ActionHead
from vlaworks.models.lm_text import answer_span_loss, greedy_decode, text_answer_ids
from vlaworks.models.tokens import build_token_source
from vlaworks.models.tokens.base import TokenSource
from vlaworks.processing import PolicyProcessor

if TYPE_CHECKING:
    from vlaworks.data.normalize import Normalizer


class AuxLoss(nn.Module, ABC):
    """A loss beside the head's (mask decoding, geometry alignment, VL next-token).

    It reads the same backbone output as the head; blocks it needs (e.g. ``<SEG>``) come
    from a token source. ``needs_hidden_states`` asks the backbone for all layers' states.
    """

    weight: float = 1.0
    needs_hidden_states: bool = False

    @abstractmethod
    def loss(self, out: BackboneOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Unweighted scalar loss and float metrics."""


#: auxiliary losses: name -> ``Part(options dataclass, builder(backbone, config, options))``
AUX_LOSSES = PartRegistry(
    "aux loss",
    {
        "geometry_align": "vlaworks.models.aux.geometry:PART",
        "seg_mask": "vlaworks.models.aux.seg:PART",
        "target_point": "vlaworks.models.aux.point:PART",
    },
)

#: name of the teacher-forced answer block of vision-language batches
VL_ANSWER_BLOCK = "vl_answer"


class VLAPolicy(nn.Module):
    """A VLM turned into an action-chunk policy."""

    def __init__(
        self,
        config: PolicyConfig,
        backbone: Backbone,
        head: ActionHead,
        token_sources: list[TokenSource] | None = None,
        aux_losses: list[AuxLoss] | None = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = head
        self.token_sources = nn.ModuleList(token_sources or [])
        self.aux_losses = nn.ModuleList(aux_losses or [])
        #: the one observation -> Batch -> env action step (holds the normaliser)
        self.processor = PolicyProcessor.from_config(config, normalizer)

    @property
    def normalizer(self) -> Normalizer | None:
        """The action / state statistics the policy was trained with (the processor's)."""
        return self.processor.normalizer

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def reset(self) -> None:
        """Start a new episode. The policy keeps no per-episode state, so nothing to clear."""

    def prefix(self, batch: Batch) -> list[ExtraTokens]:
        """The token sources' blocks for ``batch``, in config order."""
        blocks: list[ExtraTokens] = []
        for source in self.token_sources:
            blocks.extend(source.tokens(batch, self.backbone))
        return blocks

    def encode(self, batch: Batch, *, training: bool) -> BackboneOutput:
        """The backbone's output over the token sources' and the head's blocks, what the head's
        loss and the auxiliary losses read (all layers' states when one of them needs them);
        ``training=False`` gives the head's inference blocks (held-out scores of aux losses)."""
        blocks = [*self.prefix(batch), *self.head.extra_tokens(batch, self.backbone, training=training)]
        return self.backbone(
            batch.images,
            batch.instructions,
            blocks,
            output_hidden_states=self.head.needs_hidden_states
            or any(a.needs_hidden_states for a in self.aux_losses),
        )

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Training step: scalar loss and float metrics (``loss`` included).

        Robot batches (with actions) go through the head; vision-language batches
        (``vl_prompt`` / ``vl_answer``, no actions) through :meth:`text_loss`.
        """
        if batch.is_vl:
            return self.text_loss(batch)
        if batch.actions is None:
            raise ValueError(
                "VLAPolicy.forward needs a robot batch with actions or a vision-language batch with "
                "vl_prompt and vl_answer (and no actions)."
            )
        self._check_cameras(batch)
        out = self.encode(batch, training=True)
        loss, metrics = self.head.loss(out, batch)
        metrics = dict(metrics)
        for index, aux in enumerate(self.aux_losses):
            aux_loss, aux_metrics = aux.loss(out, batch)
            loss = loss + aux.weight * aux_loss
            name = self.config.aux_losses[index].type
            metrics[f"{name}/loss"] = aux_loss.item()
            metrics.update({f"{name}/{k}": v for k, v in aux_metrics.items()})
        metrics["loss"] = loss.item()
        return loss, metrics

    # --- vision-language co-training and answering -------------------------------------------
    def text_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Next-token cross-entropy on the answer tokens of a vision-language batch.

        The prompt is ``batch.vl_prompt`` placed where the backbone's native template puts
        the instruction; token sources are not used (they read robot fields such as the
        proprio state, absent from VL samples). Metrics: ``vl_ce``, ``vl_token_acc``.
        """
        if batch.vl_prompt is None or batch.vl_answer is None:
            raise ValueError("text_loss needs a Batch with vl_prompt and vl_answer (one per row).")
        if len(batch.vl_prompt) != batch.size or len(batch.vl_answer) != batch.size:
            raise ValueError(
                f"Batch has {batch.size} rows but {len(batch.vl_prompt)} vl_prompt and "
                f"{len(batch.vl_answer)} vl_answer entries."
            )
        self._check_cameras(batch)
        ids, keep = text_answer_ids(self.backbone, batch.vl_answer)
        out = self.backbone(batch.images, batch.vl_prompt, [ExtraTokens(VL_ANSWER_BLOCK, ids=ids)])
        loss, acc = answer_span_loss(self.backbone, out, VL_ANSWER_BLOCK, ids, keep)
        return loss, {"vl_ce": float(loss.detach()), "vl_token_acc": float(acc), "loss": float(loss.detach())}

    @torch.no_grad()
    def answer(self, batch: Batch, max_new_tokens: int = 32) -> list[str]:
        """Greedy text answers (KV-cached) to ``batch.vl_prompt`` (or the instructions when
        absent), stopping at EOS or after ``max_new_tokens``; special tokens are stripped."""
        self._check_cameras(batch)
        prompts = batch.vl_prompt if batch.vl_prompt is not None else batch.instructions
        return greedy_decode(self.backbone, batch.images, list(prompts), max_new_tokens=max_new_tokens)

    def prepare(self, action_chunks: np.ndarray) -> bool:
        """Fit data-dependent parts on normalised training chunks ``[N, chunk, action_dim]``
        before training: a FAST token head learns its BPE merges here. Returns whether
        anything was fitted (bins, string and continuous heads need nothing)."""
        tokenizer = getattr(self.head, "tokenizer", None)
        if tokenizer is None or not hasattr(tokenizer, "fit"):
            return False
        chunks = np.asarray(action_chunks, dtype=np.float32)
        if chunks.ndim != 3 or chunks.shape[1:] != (self.config.chunk_size, self.config.action_dim):
            raise ValueError(
                f"prepare needs normalised chunks [N, {self.config.chunk_size}, {self.config.action_dim}]; "
                f"got {chunks.shape}."
            )
        self.head.fit_tokenizer(chunks)
        self.head.bind(self.backbone)
        return True

    @torch.no_grad()
    def predict(self, batch: Batch) -> torch.Tensor:
        """Normalised action chunk ``[B, chunk, action_dim]`` for ``batch``."""
        self._check_cameras(batch)
        return self.head.predict(batch, self.backbone, self.prefix(batch))

    def predict_chunk(self, observations: list[dict[str, Any]]) -> np.ndarray:
        """Raw env-unit action chunks ``[B, chunk, action_dim]`` (float32) for env observations,
        prepared and returned by the policy's :class:`~vlaworks.processing.PolicyProcessor`."""
        was_training = self.training
        self.eval()
        try:
            chunk = self.predict(self.processor.batch(observations).to(self.device))
        finally:
            self.train(was_training)
        return self.processor.env_actions(chunk)

    def _check_cameras(self, batch: Batch) -> None:
        if tuple(batch.camera_names) != self.config.cameras:
            raise ValueError(
                f"Batch cameras {list(batch.camera_names)} differ from the policy's "
                f"{list(self.config.cameras)}; select the same views in the same order."
            )


def build_policy(config: PolicyConfig, normalizer: Normalizer | None = None) -> VLAPolicy:
    """Build every part named by ``config``, apply from-scratch / LoRA / freezing switches."""
    from vlaworks.models.backbones import resolve_backbone

    if normalizer is not None:
        check_normalizer(config, normalizer)
    backbone_spec = resolve_backbone(config.backbone, config.backbone_options)
    backbone = backbone_spec.build()
    if config.from_scratch:
        reinitialise(backbone)
    if backbone_spec.options.dual_encoder:
        from vlaworks.models.vision.dual import make_dual_encoder

        make_dual_encoder(backbone)
    sources = [build_token_source(spec, backbone, config) for spec in config.token_sources]
    head = build_head(config.head, backbone, config)
    aux = [AUX_LOSSES.build(spec, backbone, config) for spec in config.aux_losses]
    policy = VLAPolicy(config, backbone, head, sources, aux, normalizer)
    if config.lora.enabled:
        inject_lora(policy)
    set_trainable(policy)
    return policy


def check_normalizer(config: PolicyConfig, normalizer: Normalizer) -> None:
    """The normaliser must use the config's mode and cover the action (and state if used)."""
    if normalizer.mode != config.normaliser_mode:
        raise ValueError(
            f"Normalizer mode {normalizer.mode!r} differs from PolicyConfig.normaliser_mode "
            f"{config.normaliser_mode!r}; build both with the same mode."
        )
    needed = ["action", *(["observation.state"] if config.use_state else [])]
    absent = [k for k in needed if k not in normalizer.keys]
    if absent:
        raise ValueError(
            f"Normalizer lacks {absent} (it covers {list(normalizer.keys)}); this policy needs them."
        )
    if normalizer.dim("action") != config.action_dim:
        raise ValueError(
            f"Normalizer actions have {normalizer.dim('action')} dims; "
            f"the policy predicts {config.action_dim}."
        )


def reinitialise(module: nn.Module) -> None:
    """Re-draw every weight of ``module`` from its initialiser (training from scratch).

    ``transformers`` sub-models use their own ``initialize_weights`` (after clearing the
    "already initialised" flags it sets on load); other layers use ``reset_parameters``.
    """
    from transformers import PreTrainedModel

    covered: set[int] = set()
    for sub in module.modules():
        if id(sub) in covered or not isinstance(sub, PreTrainedModel):
            continue
        for part in sub.modules():
            covered.add(id(part))
            part._is_hf_initialized = False
        for tensor in [*sub.parameters(), *sub.buffers()]:
            tensor._is_hf_initialized = False
        sub.initialize_weights()
        sub.tie_weights()
    for sub in module.modules():
        if id(sub) not in covered and hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


def _vision_module_ids(backbone: Backbone) -> set[int]:
    return {id(m) for root in backbone.vision_modules() for m in root.modules()}


def lora_target_names(backbone: Backbone, targets: tuple[str, ...]) -> list[str]:
    """Full names of the LM's ``nn.Linear`` layers whose last name part is in ``targets``."""
    vision = _vision_module_ids(backbone)
    names = [
        name
        for name, module in backbone.named_modules()
        if isinstance(module, nn.Linear) and id(module) not in vision and name.rsplit(".", 1)[-1] in targets
    ]
    if not names:
        found = sorted(
            {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ValueError(
            f"No LM linear layer matches LoRA targets {list(targets)}; linear layer names: {found}."
        )
    return names


def inject_lora(policy: VLAPolicy) -> None:
    """Insert ``peft`` LoRA adapters into the backbone's LM linear layers (in place)."""
    from peft import LoraConfig, inject_adapter_in_model

    opts = policy.config.lora
    lora = LoraConfig(
        r=opts.r,
        lora_alpha=opts.alpha,
        lora_dropout=opts.dropout,
        target_modules=lora_target_names(policy.backbone, opts.target_modules),
    )
    inject_adapter_in_model(lora, policy.backbone)


def merge_lora(policy: VLAPolicy) -> VLAPolicy:
    """A copy of ``policy`` with its LoRA adapters folded into the base weights (peft's
    ``merge``) and plain linear layers in their place, whose config says
    ``lora.enabled = False``: it predicts the same actions, runs without peft's extra
    matmuls, and ``save_policy`` / ``load_policy`` round trip it as a full fine-tuning policy
    (for deployment or export; it trains all LM weights if trained further)."""
    import copy
    from dataclasses import replace

    from peft.tuners.tuners_utils import BaseTunerLayer

    if not policy.config.lora.enabled:
        raise ValueError("This policy has no LoRA adapters to merge; export it without --merge-lora.")
    merged = copy.deepcopy(policy)
    for name, module in list(merged.backbone.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(merged.backbone.get_submodule(parent), child, module.get_base_layer())
    merged.config = replace(policy.config, lora=replace(policy.config.lora, enabled=False))
    set_trainable(merged)
    return merged


def without_aux_losses(policy: VLAPolicy) -> VLAPolicy:
    """The inference policy of ``policy``: the same backbone, token sources, head and
    normaliser (shared, not copied) without its training-only auxiliary losses, whose config
    says ``aux_losses = []``, so ``save_policy`` writes none of their weights (a geometry
    projector, a mask decoder) and loading it needs none of their teachers."""
    from dataclasses import replace

    config = replace(policy.config, aux_losses=[])
    sources = list(policy.token_sources)
    stripped = VLAPolicy(config, policy.backbone, policy.head, sources, [], policy.normalizer)
    return stripped.train(policy.training)


def with_decoding(policy: VLAPolicy, decoding: str) -> VLAPolicy:
    """Set ``policy``'s token head, in place, to decode ``decoding`` (``greedy``, ``median``,
    ``mean``; :meth:`TokenActionHead.set_decoding` says which tokenizer takes which) and its
    config to say so, so that ``save_policy`` writes a policy that decodes that way; returns it."""
    from dataclasses import replace

    from vlaworks.models.heads.token.head import TokenActionHead

    if not isinstance(policy.head, TokenActionHead):
        raise ValueError(
            f"Only token heads have a decoding; this policy's head is {policy.config.head.type!r}."
        )
    policy.head.set_decoding(decoding)
    head = replace(policy.config.head, options={**policy.config.head.options, "decoding": decoding})
    policy.config = replace(policy.config, head=head)
    return policy


def set_trainable(policy: VLAPolicy) -> None:
    """Set ``requires_grad`` from the config's switches (callable again per training stage).

    Full fine-tuning trains everything; with LoRA the backbone's non-vision base weights
    are frozen and only adapters train. Then ``freeze_vision`` freezes the vision
    encoder(s), ``freeze_word_embeddings`` the LM input embeddings and ``freeze_backbone``
    the whole backbone. The head (its ``<ActionQuery>`` included), token sources and
    auxiliary modules always stay trainable; the frozen copy of a dual vision encoder
    never trains.
    """
    config = policy.config
    backbone = policy.backbone
    for param in policy.parameters():
        param.requires_grad_(True)
    if config.lora.enabled:
        if not any("lora_" in name for name, _ in backbone.named_parameters()):
            raise ValueError("LoRA is enabled but the backbone has no LoRA adapters; call inject_lora first.")
        vision = {id(p) for root in backbone.vision_modules() for p in root.parameters()}
        for name, param in backbone.named_parameters():
            if "lora_" not in name and id(param) not in vision:
                param.requires_grad_(False)
    if config.freeze_vision:
        for root in backbone.vision_modules():
            root.requires_grad_(False)
    if config.freeze_word_embeddings:
        backbone.input_embeddings().requires_grad_(False)
    if config.freeze_backbone:
        backbone.requires_grad_(False)
    from vlaworks.models.vision.dual import freeze_frozen_copies

    freeze_frozen_copies(backbone)


def count_parameters(module: nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts (shared tensors counted once)."""
    seen: dict[int, nn.Parameter] = {id(p): p for p in module.parameters()}
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return {"total": total, "trainable": trainable}
