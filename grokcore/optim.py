"""Loss and optimiser: cross-entropy with log-softmax in a chosen dtype, full-batch AdamW."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grokcore.config import RunConfig


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, loss_dtype: torch.dtype) -> torch.Tensor:
    """Mean cross-entropy, with the logits cast to ``loss_dtype`` before log-softmax.

    The seed computes it in float64: in float32, once the logit gap passes about 16.6 the
    softmax rounds to one-hot, gradients vanish and the loss spikes (softmax collapse).
    """
    log_probs = F.log_softmax(logits.to(loss_dtype), dim=-1)
    return -log_probs.gather(-1, labels[:, None]).mean()


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=(cfg.beta1, cfg.beta2), foreach=True)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig):
    """Linear warm-up from lr / warmup_epochs to lr over the first warmup_epochs steps."""
    warmup = cfg.warmup_epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, 1.0) if warmup else 1.0)
