"""Losses and optimiser variants.

Losses: cross-entropy over log-softmax or over log-StableMax, in a chosen dtype.
Optimiser: full-batch AdamW with a linear warm-up, and optional gradient transforms applied in
place between ``backward()`` and ``optimizer.step()`` (``GradientTransform``):

- Grokfast (Lee et al. 2024), a low-pass filter of the gradient added back to it:
  ``ema``: mu <- alpha mu + (1 - alpha) g, then g <- g + lambda mu (mu starts at the first g);
  ``ma``:  g <- g + lambda * mean(last `window` raw gradients), once `window` of them are stored.
- The orthogonal gradient of Prieto et al. 2025 ("perpendicular AdamW"): per parameter tensor,
  g <- g - (w.g / w.w) w, rescaled to the norm of the original g, so the step cannot simply
  grow the weights along themselves (the route to softmax collapse).

When both are on, Grokfast filters first and the projection acts on the filtered gradient, so
what AdamW receives has no component along the weights.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from grokcore.config import RunConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ---- losses ------------------------------------------------------------------------------------
def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, loss_dtype: torch.dtype) -> torch.Tensor:
    """Mean cross-entropy, with the logits cast to ``loss_dtype`` before log-softmax.

    The seed computes it in float64: in float32, once the logit gap passes about 16.6 the
    softmax rounds to one-hot, gradients vanish and the loss spikes (softmax collapse).
    """
    log_probs = F.log_softmax(logits.to(loss_dtype), dim=-1)
    return -log_probs.gather(-1, labels[:, None]).mean()


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0: positive, increasing, C^1 at 0.

    Both branches are evaluated on clamped inputs so that neither can produce inf or NaN (and no
    NaN gradient leaks through ``torch.where`` from the branch not taken).
    """
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Probabilities s(z_i) / sum_j s(z_j): StableMax, the softmax without exponentials."""
    s = stablemax_s(logits)
    return s / s.sum(dim=dim, keepdim=True)


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = stablemax_s(logits)
    return s.log() - s.sum(dim=dim, keepdim=True).log()


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                            loss_dtype: torch.dtype) -> torch.Tensor:
    """Mean cross-entropy with StableMax in place of softmax, computed in ``loss_dtype``."""
    log_probs = log_stablemax(logits.to(loss_dtype), dim=-1)
    return -log_probs.gather(-1, labels[:, None]).mean()


LOSSES = {"softmax": cross_entropy, "stablemax": stablemax_cross_entropy}


def make_loss(cfg: RunConfig) -> LossFn:
    """The run's loss as ``loss(logits, labels)``: cfg.loss in cfg.loss_dtype."""
    fn, dtype = LOSSES[cfg.loss], getattr(torch, cfg.loss_dtype)
    return lambda logits, labels: fn(logits, labels, dtype)


# ---- optimiser ---------------------------------------------------------------------------------
def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    return adamw([p for p in model.parameters() if p.requires_grad], cfg)


def adamw(params: Sequence[torch.Tensor], cfg: RunConfig) -> torch.optim.Optimizer:
    """The run's AdamW over ``params`` (a model's, or a pack's stacked ones: grokcore.stacked)."""
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=(cfg.beta1, cfg.beta2), foreach=True)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig):
    """Linear warm-up from lr / warmup_epochs to lr over the first warmup_epochs steps."""
    warmup = cfg.warmup_epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, 1.0) if warmup else 1.0)


# ---- gradient transforms -----------------------------------------------------------------------
class GrokfastEMA:
    """Grokfast, exponential-moving-average form: mu <- alpha mu + (1 - alpha) g; g += lambda mu.

    mu starts at the first gradient it sees (as in the Grokfast authors' code), not at zero, so
    the filter is not biased towards zero over its first ~1 / (1 - alpha) steps.
    """

    def __init__(self, alpha: float = 0.98, lamb: float = 2.0):
        self.alpha, self.lamb = alpha, lamb
        self.mu: list[torch.Tensor] | None = None

    @torch.no_grad()
    def __call__(self, grads: Sequence[torch.Tensor]) -> None:
        if self.mu is None:
            self.mu = [g.detach().clone() for g in grads]
        else:
            for mu, g in zip(self.mu, grads):
                mu.mul_(self.alpha).add_(g, alpha=1 - self.alpha)
        for mu, g in zip(self.mu, grads):
            g.add_(mu, alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        return {"mu": None if self.mu is None else [m.clone() for m in self.mu]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mu = None if state["mu"] is None else [m.clone() for m in state["mu"]]


class GrokfastMA:
    """Grokfast, moving-average form: g += lambda * (mean of the last `window` raw gradients).

    The gradients are kept in a ring buffer with a running float64 sum; the filter acts only once
    the window is full (the Grokfast authors' default), before that g passes unchanged.
    Memory: `window` copies of the parameters.
    """

    def __init__(self, window: int = 100, lamb: float = 5.0):
        self.window, self.lamb = window, lamb
        self.buffer: list[torch.Tensor] | None = None  # per parameter: (window, *shape)
        self.total: list[torch.Tensor] | None = None   # per parameter: float64 sum of the buffer
        self.count = 0  # gradients seen, capped at window
        self.pos = 0    # next slot of the ring

    @torch.no_grad()
    def __call__(self, grads: Sequence[torch.Tensor]) -> None:
        if self.buffer is None:
            self.buffer = [g.new_zeros((self.window, *g.shape)) for g in grads]
            self.total = [g.new_zeros(g.shape, dtype=torch.float64) for g in grads]
        full = self.count == self.window
        for buf, total, g in zip(self.buffer, self.total, grads):
            if full:
                total.sub_(buf[self.pos])
            buf[self.pos].copy_(g)
            total.add_(g)
        self.pos = (self.pos + 1) % self.window
        self.count = min(self.count + 1, self.window)
        if self.count == self.window:
            for total, g in zip(self.total, grads):
                g.add_((total / self.window).to(g.dtype), alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        copy = lambda ts: None if ts is None else [t.clone() for t in ts]  # noqa: E731
        return {"buffer": copy(self.buffer), "total": copy(self.total), "count": self.count,
                "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        copy = lambda ts: None if ts is None else [t.clone() for t in ts]  # noqa: E731
        self.buffer, self.total = copy(state["buffer"]), copy(state["total"])
        self.count, self.pos = state["count"], state["pos"]


@torch.no_grad()
def orthogonalize_(weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    """In place, per tensor: g <- (g - (w.g / w.w) w) * |g| / |g - (w.g / w.w) w|.

    A zero w leaves g as it is; a g exactly parallel to w becomes zero. No host sync.
    """
    for w, g in zip(weights, grads):
        w, flat = w.detach().reshape(-1), g.reshape(-1)
        ww = torch.dot(w, w)
        coef = torch.where(ww > 0, torch.dot(w, flat) / ww.clamp(min=torch.finfo(w.dtype).tiny), 0)
        perp = flat - coef * w
        norm_g, norm_perp = torch.linalg.vector_norm(flat), torch.linalg.vector_norm(perp)
        scale = torch.where(norm_perp > 0,
                            norm_g / norm_perp.clamp(min=torch.finfo(w.dtype).tiny), 0)
        g.copy_((perp * scale).view_as(g))


def total_grad_norm(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all gradient tensors, in float64 (a 0-dim tensor; no host sync)."""
    if not grads:
        return torch.tensor(0.0, dtype=torch.float64)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in grads]))


class GradientTransform:
    """The run's gradient transforms, applied in place to the parameters' .grad between backward
    and the optimiser step. ``raw_grad_norm`` keeps the norm of the loss gradient before them (a
    0-dim float64 tensor, no host sync), so the logged grad_norm means the same in every variant.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], cfg: RunConfig):
        self.params = list(params)
        self.grokfast: GrokfastEMA | GrokfastMA | None = None
        if cfg.grokfast == "ema":
            self.grokfast = GrokfastEMA(cfg.grokfast_alpha, cfg.grokfast_ema_lambda)
        elif cfg.grokfast == "ma":
            self.grokfast = GrokfastMA(cfg.grokfast_window, cfg.grokfast_ma_lambda)
        self.ortho = cfg.ortho_grad
        self.raw_grad_norm: torch.Tensor | None = None

    @classmethod
    def for_run(cls, params: Sequence[torch.nn.Parameter], cfg: RunConfig) -> "GradientTransform | None":
        """None when the run uses no transform: the training step then stays as plain as before."""
        return cls(params, cfg) if cfg.grokfast != "none" or cfg.ortho_grad else None

    def __call__(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        self.raw_grad_norm = total_grad_norm(grads)
        if self.grokfast is not None:
            self.grokfast(grads)
        if self.ortho:
            orthogonalize_(params, grads)

    def state_dict(self) -> dict[str, Any]:
        return {"grokfast": None if self.grokfast is None else self.grokfast.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.grokfast is not None and state.get("grokfast") is not None:
            self.grokfast.load_state_dict(state["grokfast"])
