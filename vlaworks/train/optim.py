"""AdamW with decoupled weight decay on matrices only, and a warm-up + cosine schedule.

Weight decay is applied to weight matrices of linear / conv / attention layers and
*not* to biases, normalisation parameters (LayerNorm, RMSNorm, GroupNorm, BatchNorm)
or embeddings (``nn.Embedding``, learned query / placeholder tokens stored as
parameters), the usual practice for transformers. Frozen parameters
(``requires_grad=False``) never enter the optimizer.
"""

from __future__ import annotations

from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_cosine_schedule_with_warmup

_NO_DECAY_NAME_HINTS = ("embed", "token", "query", "pos_", "position")


def _is_no_decay_module(module: nn.Module) -> bool:
    if isinstance(module, nn.Embedding | nn.EmbeddingBag | nn.modules.batchnorm._NormBase
                  | nn.LayerNorm | nn.GroupNorm | nn.RMSNorm):
        return True
    # Norm classes defined by model libraries (Qwen2RMSNorm, LlamaRMSNorm, ...).
    return "norm" in type(module).__name__.lower()


def split_decay_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(decay, no_decay)`` lists of the trainable parameters of ``model``.

    A parameter decays when it has >= 2 dims, is not owned by a norm or embedding module,
    and its own name does not mark it as an embedding / learned token.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        no_decay_module = _is_no_decay_module(module)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            lowered = name.lower()
            if no_decay_module or param.ndim < 2 or any(h in lowered for h in _NO_DECAY_NAME_HINTS):
                no_decay.append(param)
            else:
                decay.append(param)
    return decay, no_decay


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
) -> AdamW:
    """AdamW over the trainable parameters, two groups (with / without weight decay)."""
    decay, no_decay = split_decay_params(model)
    if not decay and not no_decay:
        raise ValueError(
            "The model has no trainable parameters (all requires_grad=False); unfreeze the parts "
            "this stage should train."
        )
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)


def build_scheduler(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Linear warm-up from 0 to the peak lr over ``warmup_steps``, then cosine decay to 0."""
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, total_steps)
