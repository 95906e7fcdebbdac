"""Progress measures of a modular-arithmetic model (Nanda et al. 2023), computed during training.

Definitions (REFERENCE.md section 2), for (x^a + y^b) mod p with two operands:

* **Fourier basis over Z_p** (``fourier_basis``): row 0 is the constant 1/sqrt(p); rows 2k-1 and
  2k are cos(w_k x) and sin(w_k x), w_k = 2 pi k / p, normalised, for k = 1..(p-1)/2. Orthonormal.
* **Coordinates.** The label depends on (u, v) = (x^a mod p, y^b mod p), so Fourier components of
  inputs are taken over u and v. When x -> x^a is a bijection (gcd(a, p - 1) = 1) this only
  relabels x. When it is not, several inputs share one u and some u have no input at all: values
  are then *pushed forward* to the (u, v) grid by averaging over the inputs of each cell, and a
  cell that no input reaches counts as zero (after centring, "no signal"). The Fourier analysis is
  then of a function known on the image only, and its spectrum is less sharp; the dataset
  statistics ``bijective_a`` / ``bijective_b`` say when this applies.
* **Key frequencies** (``neuron_frequency_fractions``, ``key_frequencies``): the MLP activations of
  the last block at the last position, over all p^2 inputs, pushed to the (u, v) grid, get a 2D
  Fourier transform; their variance is the energy in every component but the constant one. Frequency k's share of a neuron's variance is the energy
  in its components {const, cos k, sin k} x {const, cos k, sin k} (less const x const). A neuron
  whose best frequency explains at least ``threshold`` (0.85) of its variance is well explained;
  the key frequencies are the distinct best frequencies of well-explained neurons.
* **Restricted / excluded loss** (``restricted_excluded_losses``): the directions cos(w_k z) and
  sin(w_k z) over the p^2 inputs, z = (u + v) mod p, for the key frequencies k (in (u, v)
  coordinates these are cos(w_k (u + v)) and sin(w_k (u + v))). The logits of every output class
  are projected orthogonally onto their span (an orthonormal basis from an SVD; with bijections
  the directions are already orthogonal, so this is the plain sum of components). Restricted
  logits = that projection plus the difference of the per-class means (bias correction);
  restricted loss = cross-entropy over all p^2 inputs. Excluded logits = logits minus the
  projection; excluded loss = cross-entropy on the train set. Both in float64.
* **Sum of squared weights**: the trainer logs it every evaluation (``sum_sq_weights``).
* **Gini** (``gini``, Hurley and Rickard) of the norms of the p Fourier components of W_E (token
  rows 0..p-1, rows relabelled by u = t^a and, separately, by v = t^b; ``gini_embed`` is the mean
  of the two, equal to either when a = b) and of W_L = W_out W_U (over the output class z, which
  needs no relabelling).
* ``key_freq_explained``: the share of the (pushed-forward) MLP variance, over all
  neurons, that lies in the key frequencies' components.

Cost: one fast-path forward over the p^2 inputs and two [p, p] x [p, p * d_mlp] products in the
model's dtype; memory a few copies of [p^2, d_mlp] (see README for the figures at p = 113).
Nothing here is of size p^2 x p^2, which is what ran the seed out of memory.

In training: with ``RunConfig.measure_every`` > 0 the expmod task's ``progress_measures`` hook
hands the Trainer a ``ProgressMeasures``, whose ``on_eval`` runs on each evaluation row at that
cadence (and at the last evaluation) *before* any callback sees the row, so the measures land in
``trainer.history`` and in whatever the callbacks log. The same object can also be passed as an
ordinary first callback to a trainer built without the setting. The phases that these measures
delimit are measured with the other signals (``grokcore.signals.measure_phases``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.tasks.modular import power_table

MEASURES = ("restricted_loss", "excluded_loss", "gini_embed", "gini_unembed",
            "key_freq_explained", "n_key_freqs")
KEY_FREQS = "key_freqs"  # a string such as "4 11 14" in the history row (not a number)


def measures_apply(cfg: RunConfig) -> bool:
    """The progress measures are defined for expmod with two operands and an MLP."""
    return cfg.task == "expmod" and cfg.n_operands == 2 and not cfg.attn_only


# ---- Fourier basis and Gini --------------------------------------------------------------------
def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[p, p] orthonormal rows: constant, then cos k, sin k for k = 1..(p-1)/2 (p odd)."""
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.full((p,), 1.0, dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    basis = torch.stack(rows)
    return (basis / basis.norm(dim=1, keepdim=True)).to(dtype)


def basis_frequencies(p: int) -> torch.Tensor:
    """The frequency of each basis row: 0, 1, 1, 2, 2, ..., (p-1)/2, (p-1)/2."""
    return torch.tensor([0] + [k for k in range(1, (p - 1) // 2 + 1) for _ in (0, 1)])


def basis_labels(p: int) -> list[str]:
    return ["const"] + [f"{f} {k}" for k in range(1, (p - 1) // 2 + 1) for f in ("cos", "sin")]


def gini(values: Sequence[float] | torch.Tensor) -> float:
    """Hurley-Rickard Gini: G = 1 - 2 sum_i (c_i / sum c) (N - i + 1/2) / N, c ascending.

    0 for a uniform vector, (N - 1) / N for a one-hot one; 0 for an all-zero vector.
    """
    c = torch.as_tensor(values, dtype=torch.float64).flatten().abs().sort().values
    n, total = c.numel(), float(c.sum())
    if n == 0 or total == 0.0:
        return 0.0
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(1.0 - 2.0 * ((c / total) * (n - i + 0.5) / n).sum())


# ---- coordinates -------------------------------------------------------------------------------
def power_map(p: int, exponent: int) -> torch.Tensor:
    return power_table(p, exponent)


def pushforward(values: torch.Tensor, cell: torch.Tensor, n_cells: int) -> torch.Tensor:
    """Mean of ``values`` rows [n, ...] over each cell id; cells that no row reaches are zero."""
    out = torch.zeros((n_cells, *values.shape[1:]), dtype=values.dtype)
    out.index_add_(0, cell, values)
    counts = torch.bincount(cell, minlength=n_cells).to(values.dtype)
    return out / counts.clamp(min=1).reshape(-1, *[1] * (values.dim() - 1))


def averaging_matrix(p: int, exponent: int) -> torch.Tensor:
    """[p, p] matrix M with (M f)(u) = mean of f(x) over the x with x^exponent = u (0 if none).

    For a bijection it is the permutation matrix that relabels x by u = x^exponent.
    """
    u = power_map(p, exponent)
    m = torch.zeros((p, p), dtype=torch.float64)
    m[u, torch.arange(p)] = 1.0
    return m / m.sum(dim=1, keepdim=True).clamp(min=1)


def grid_fourier_energy(acts: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    """Energy of functions on the input grid by (u, v) frequency pair: [K+1, K+1, n].

    ``acts`` [p^2, n] are values over all inputs (x, y) in canonical x-major order. They are
    pushed forward to the (u, v) grid (``averaging_matrix``) and transformed with the Fourier
    basis on each axis; the two steps are fused into one [p, p] matrix per axis, so the cost is
    two [p, p] x [p, p * n] products. Entry [f, g] sums the squared coefficients of the basis
    pairs whose frequencies are f (over u) and g (over v); [0, 0] is the grid mean's share.
    """
    p = cfg.p
    dtype = acts.dtype if acts.dtype in (torch.float32, torch.float64) else torch.float32
    basis = fourier_basis(p)
    left = (basis @ averaging_matrix(p, cfg.a)).to(dtype)
    right = (basis @ averaging_matrix(p, cfg.b)).to(dtype)
    grid = acts.to(dtype).reshape(p, p, -1)
    coeffs = torch.einsum("ix,xyn->iyn", left, grid)
    coeffs = torch.einsum("jy,iyn->ijn", right, coeffs).square_().double()
    freq = basis_frequencies(p)
    k = (p - 1) // 2 + 1
    by_row = torch.zeros((k, p, coeffs.shape[-1]), dtype=coeffs.dtype).index_add_(0, freq, coeffs)
    del coeffs
    return torch.zeros((k, k, by_row.shape[-1]), dtype=by_row.dtype).index_add_(1, freq, by_row)


def neuron_frequency_fractions(acts: torch.Tensor, cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per neuron, the share of its variance in each frequency k = 1..K: ([n, K], variance [n]).

    ``acts`` [p^2, n] are activations over all inputs in canonical order. The variance is that of
    the pushed-forward function over the (u, v) grid (every component but the constant one);
    frequency k's part is its {const, cos k, sin k}^2 block. Dead neurons get fractions of zero.
    """
    energy = grid_fourier_energy(acts, cfg)  # [K+1, K+1, n]
    total = energy.sum(dim=(0, 1)) - energy[0, 0]
    diag = torch.diagonal(energy, dim1=0, dim2=1).T  # [K+1, n]: the (k, k) blocks
    block = diag[1:] + energy[0, 1:] + energy[1:, 0]  # [K, n]
    alive = total > 1e-12 * float(total.max().clamp(min=1e-300))
    fractions = torch.where(alive, block / total.clamp(min=1e-300), torch.zeros_like(block))
    return fractions.T, total


def key_frequencies(fractions: torch.Tensor, threshold: float = 0.85) -> list[int]:
    """Distinct best frequencies (1-based) of the neurons whose best one explains >= threshold."""
    best, which = fractions.max(dim=1)
    return sorted({int(k) + 1 for k in which[best >= threshold].tolist()})


def explained_by(fractions: torch.Tensor, variance: torch.Tensor, freqs: Sequence[int]) -> float:
    """Share of the total variance over all neurons in the given frequencies' components."""
    total = float(variance.sum())
    if not freqs or total == 0.0:
        return 0.0
    idx = torch.tensor([k - 1 for k in freqs])
    return float((fractions[:, idx].sum(dim=1) * variance).sum() / total)


def key_directions(labels: torch.Tensor, p: int, freqs: Sequence[int]) -> torch.Tensor:
    """Orthonormal basis [n, r] of the span of cos(w_k z), sin(w_k z) over the inputs, z = labels."""
    if not freqs:
        return torch.zeros((len(labels), 0), dtype=torch.float64)
    z = labels.double()[:, None]
    w = 2 * math.pi * torch.tensor(list(freqs), dtype=torch.float64)[None, :] / p
    dirs = torch.cat([torch.cos(w * z), torch.sin(w * z)], dim=1)
    u, s, _ = torch.linalg.svd(dirs, full_matrices=False)
    return u[:, s > 1e-9 * s.max()]


def restricted_excluded_losses(logits: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor,
                               p: int, freqs: Sequence[int]) -> tuple[float, float]:
    """(restricted loss over all inputs, excluded loss on the train set); see the module doc."""
    import torch.nn.functional as F

    logits = logits.double()
    q = key_directions(labels, p, freqs)
    proj = q @ (q.T @ logits)
    restricted = proj + (logits.mean(dim=0, keepdim=True) - proj.mean(dim=0, keepdim=True))
    excluded = (logits - proj)[train_idx]
    return (float(F.cross_entropy(restricted, labels)),
            float(F.cross_entropy(excluded, labels[train_idx])))


def embed_fourier_norms(W_E: torch.Tensor, p: int, exponent: int) -> torch.Tensor:
    """Norms [p] of the Fourier components of W_E's token rows 0..p-1, relabelled t -> t^exponent."""
    rows = pushforward(W_E[:p].detach().double().cpu(), power_map(p, exponent), p)
    return (fourier_basis(p) @ rows).norm(dim=1)


def unembed_matrix(model) -> torch.Tensor:
    """W_L = W_out W_U of the last block, [d_mlp, p]."""
    return model.blocks[-1].mlp.W_out.detach().double().cpu() @ model.W_U.detach().double().cpu()


def unembed_fourier_norms(model, p: int) -> torch.Tensor:
    """Norms [p] of the Fourier components of W_L over the output class."""
    return (unembed_matrix(model) @ fourier_basis(p).T).norm(dim=0)


@torch.no_grad()
def last_position(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [n, p], last block's MLP activations [n, d_mlp]) at the last position.

    Runs the fast path with a hook on ``blocks.{L-1}.mlp.hook_post`` (the MLP runs at the last
    position only there); if that hook point does not fire on the fast path it falls back to
    ``run_with_cache`` on the full path.
    """
    name = f"blocks.{len(model.blocks) - 1}.mlp.hook_post"
    seen: dict[str, torch.Tensor] = {}

    def grab(act, hook):
        seen["act"] = act
        return act

    with model.hooks(fwd_hooks=[(name, grab)]):
        logits = model.forward_last(tokens)
    act = seen.get("act")
    if act is None or act.dim() != 2:
        full, cache = model.run_with_cache(tokens, names_filter=lambda n: n == name)
        logits, act = full[:, -1], cache[name][:, -1]
    return logits, act


def progress_measures(model, cfg: RunConfig, dataset, threshold: float = 0.85) -> dict[str, Any]:
    """All measures of one model state: the MEASURES names and ``key_freqs`` (a list)."""
    device = next(model.parameters()).device
    logits, acts = last_position(model, dataset.inputs.to(device))
    logits, acts = logits.double().cpu(), acts.cpu()
    fractions, variance = neuron_frequency_fractions(acts, cfg)
    freqs = key_frequencies(fractions, threshold)
    restricted, excluded = restricted_excluded_losses(logits, dataset.labels, dataset.train_idx,
                                                      cfg.p, freqs)
    g_embed = [gini(embed_fourier_norms(model.W_E, cfg.p, e)) for e in {cfg.a, cfg.b}]
    return {
        "restricted_loss": restricted,
        "excluded_loss": excluded,
        "gini_embed": sum(g_embed) / len(g_embed),
        "gini_unembed": gini(unembed_fourier_norms(model, cfg.p)),
        "key_freq_explained": explained_by(fractions, variance, freqs),
        "n_key_freqs": len(freqs),
        "key_freqs": freqs,
    }


class ProgressMeasures:
    """Adds the progress measures to the trainer's evaluation rows every ``every`` epochs.

    As a trainer callback (``on_eval`` / ``on_end``) it must come before the callbacks that log
    the row; the Trainer does this by itself when ``cfg.measure_every`` > 0. The row gets the
    MEASURES as floats and ``key_freqs`` as a space-separated string ("" when none).
    """

    def __init__(self, cfg: RunConfig, dataset, every: int | None = None, threshold: float = 0.85):
        self.cfg, self.dataset = cfg, dataset
        self.every = every if every is not None else cfg.measure_every
        self.threshold = threshold
        if self.every <= 0:
            raise ConfigError("ProgressMeasures needs a positive cadence (measure_every)")
        if not measures_apply(cfg):
            raise ConfigError("progress measures need the expmod task with 2 operands and an MLP")

    def due(self, epoch: int, final: bool = False) -> bool:
        return final or epoch % self.every == 0

    def on_eval(self, trainer, row: dict[str, Any], checkpoint: bool, final: bool = False) -> None:
        if not self.due(int(row["epoch"]), final):
            return
        values = progress_measures(trainer.model, self.cfg, self.dataset, self.threshold)
        values[KEY_FREQS] = " ".join(str(k) for k in values[KEY_FREQS])
        row.update(values)

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        pass
