"""Progress measures of a modular-arithmetic model (Nanda et al. 2023), computed during training.

Definitions (REFERENCE.md section 2), for (x^a + y^b) mod p with two operands:

* **Fourier basis over Z_p** (``fourier_basis``): row 0 is the constant 1/sqrt(p); rows 2k-1 and
  2k are cos(w_k x) and sin(w_k x), w_k = 2 pi k / p, normalised, for k = 1..(p-1)/2. Orthonormal.
* **Coordinates.** The label depends on (u, v) = (x^a mod p, y^b mod p), so the spectrum of a
  function of the inputs is taken in u and v: the Fourier basis of u is *pulled back* to x
  (``pulled_back_basis``: basis function j evaluated at x^a) and the function is fitted by least
  squares over all p^2 inputs. When x -> x^a is a bijection (gcd(a, p - 1) = 1) this only
  relabels x and is the plain Fourier transform over (u, v). When it is not, the pulled-back
  functions are constant on the fibres of x -> x^a and no longer orthogonal; fitting them over
  the inputs (each (u, v) weighted by how many inputs reach it) is what keeps a neuron
  cos(w_k (x^a + y^b)) at frequency k with share 1, where zero-filling the (u, v) cells that no
  input reaches would spread it over every frequency.
* **Key frequencies** (``neuron_frequency_fractions``, ``key_frequencies``): the MLP activations of
  the last block at the last position, over all p^2 inputs. Frequency k's share of a neuron's
  variance is the R^2 of its least-squares fit by f(x^a) g(y^b), f and g in
  {1, cos w_k ., sin w_k .} (for a bijection: the energy of the {const, cos k, sin k}^2 block of
  its 2D Fourier transform). A neuron whose best frequency explains at least ``threshold``
  (0.85) of its variance is well explained; the key frequencies are the distinct best
  frequencies of well-explained neurons.
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
  rows 0..p-1 projected onto each basis function of u = t^a pulled back to t, and separately of
  v = t^b; ``gini_embed`` is the mean of the two, equal to either when a = b) and of
  W_L = W_out W_U (over the output class z, which needs no relabelling).
* ``key_freq_explained`` (``key_freq_share``): the share of the MLP variance, over all neurons,
  that the key frequencies' functions explain together (projection onto their joint span).

Cost: one fast-path forward over the p^2 inputs and a [K * 3, p] x [p, p * d_mlp] product in the
model's dtype (K = (p - 1) / 2); memory a few copies of [p^2, d_mlp] and one of
[3K, p, d_mlp] (see README for the figures at p = 113).
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


def measurable(cfg: RunConfig) -> bool:
    """What the measures need of a config: two operands (the p x p grid of inputs they fit) and
    an MLP (the activations they read). Which tasks have them is the task's to say
    (``TaskBase.progress_measures_apply``: expmod asks this)."""
    return cfg.n_operands == 2 and not cfg.attn_only


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


# ---- coordinates: the Fourier basis pulled back through x -> x^a ---------------------------------
def power_map(p: int, exponent: int) -> torch.Tensor:
    return power_table(p, exponent)


def pulled_back_basis(p: int, exponent: int) -> torch.Tensor:
    """[p, p]: column j is Fourier basis function j of u evaluated at u = x^exponent, x = 0..p-1.

    For a bijection the columns are orthonormal (a relabelling of the basis); otherwise they are
    functions constant on the fibres of x -> x^exponent, neither orthogonal nor independent.
    """
    return fourier_basis(p)[:, power_map(p, exponent)].T


def _orthonormal_columns(m: torch.Tensor, rtol: float = 1e-9) -> torch.Tensor:
    """Columns spanning the same space as ``m``'s [rows, c], orthonormal, dependent ones zero.

    Gram-Schmidt in column order, so the first column (the constant, below) keeps its direction.
    """
    out = torch.zeros_like(m)
    scale = float(m.norm(dim=0).max())
    for j in range(m.shape[1]):
        v = m[:, j] - out[:, :j] @ (out[:, :j].T @ m[:, j])
        v = v - out[:, :j] @ (out[:, :j].T @ v)  # twice is enough in float64
        if float(v.norm()) > rtol * scale:
            out[:, j] = v / v.norm()
    return out


def frequency_spans(p: int, exponent: int) -> torch.Tensor:
    """[K, p, 3]: for k = 1..K, an orthonormal basis over x of span{1, cos w_k x^e, sin w_k x^e}
    (constant first; a column is zero where x -> x^e makes the three dependent)."""
    g = pulled_back_basis(p, exponent)
    freq = basis_frequencies(p)
    spans = [_orthonormal_columns(torch.stack([g[:, 0], *g[:, freq == k].T], dim=1))
             for k in range(1, (p - 1) // 2 + 1)]
    return torch.stack(spans)


def _centred_grid(acts: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.dtype]:
    dtype = acts.dtype if acts.dtype in (torch.float32, torch.float64) else torch.float32
    grid = acts.to(dtype).reshape(p, p, -1)
    return grid - grid.mean(dim=(0, 1), keepdim=True), dtype


def neuron_frequency_fractions(acts: torch.Tensor, cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per neuron, the share of its variance that each frequency k = 1..K explains: ([n, K],
    variance [n]).

    ``acts`` [p^2, n] are activations over all inputs (x, y) in canonical x-major order. The
    variance is over all p^2 inputs. Frequency k's share is the R^2 of the least-squares fit of
    the neuron by the functions f(x^a) g(y^b) with f, g in {1, cos w_k ., sin w_k .}: the squared
    norm of the centred activations projected onto their span, over the variance. Computed as
    ``Q_k^a.T @ A @ Q_k^b`` with orthonormal bases of the per-axis spans, so nothing is
    p^2 x p^2. For bijective exponents this is the energy of the {const, cos k, sin k}^2 block
    of the 2D Fourier transform over (u, v); for the others the basis is pulled back through
    x -> x^a, not zero-filled where no input lands, so a perfect cos(w_k (x^a + y^b)) neuron
    has share 1 at k whatever the exponents. Dead (constant) neurons get fractions of zero.
    """
    p = cfg.p
    centred, dtype = _centred_grid(acts, p)  # [p, p, n]
    span_a = frequency_spans(p, cfg.a).to(dtype)  # [K, p, 3]
    span_b = frequency_spans(p, cfg.b).to(dtype)
    coeffs = torch.einsum("kxi,xyn->kiyn", span_a, centred)
    block = torch.einsum("kiyn,kyj->kijn", coeffs, span_b).square().sum(dim=(1, 2)).double()
    total = centred.double().square().sum(dim=(0, 1))
    alive = total > 1e-12 * float(total.max().clamp(min=1e-300))
    fractions = torch.where(alive, block / total.clamp(min=1e-300), torch.zeros_like(block))
    return fractions.T, torch.where(alive, total, torch.zeros_like(total))


def key_frequencies(fractions: torch.Tensor, threshold: float = 0.85) -> list[int]:
    """Distinct best frequencies (1-based) of the neurons whose best one explains >= threshold."""
    best, which = fractions.max(dim=1)
    return sorted({int(k) + 1 for k in which[best >= threshold].tolist()})


def key_freq_share(acts: torch.Tensor, cfg: RunConfig, freqs: Sequence[int]) -> float:
    """Share of the variance of all neurons (``acts`` [p^2, n]) that the key frequencies'
    functions explain together: the projection onto the span of f(x^a) g(y^b) for f, g in
    {1, cos w_k ., sin w_k .}, k in ``freqs``. For bijective exponents, the sum of those
    frequencies' block energies."""
    p = cfg.p
    centred, _ = _centred_grid(acts.double(), p)
    total = float(centred.square().sum())
    if not freqs or total == 0.0:
        return 0.0
    cols = []
    span_a, span_b = frequency_spans(p, cfg.a), frequency_spans(p, cfg.b)
    for k in freqs:
        fa, fb = span_a[k - 1], span_b[k - 1]  # [p, 3]
        for i in range(3):
            for j in range(3):
                if (i, j) != (0, 0):  # the constant is centred away
                    cols.append(torch.outer(fa[:, i], fb[:, j]).flatten())
    basis = _orthonormal_columns(torch.stack(cols, dim=1))
    return float((basis.T @ centred.reshape(p * p, -1)).square().sum() / total)


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
    """Norms [p] of W_E's token rows 0..p-1 projected onto each Fourier basis function of
    u = t^exponent pulled back to t (``pulled_back_basis``): for a bijection, the norms of the
    Fourier components of the rows relabelled by u."""
    g = pulled_back_basis(p, exponent)
    return (g.T @ W_E[:p].detach().double().cpu()).norm(dim=1) / g.norm(dim=0)


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
    fractions, _ = neuron_frequency_fractions(acts, cfg)
    freqs = key_frequencies(fractions, threshold)
    restricted, excluded = restricted_excluded_losses(logits, dataset.labels, dataset.train_idx,
                                                      cfg.p, freqs)
    g_embed = [gini(embed_fourier_norms(model.W_E, cfg.p, e)) for e in {cfg.a, cfg.b}]
    return {
        "restricted_loss": restricted,
        "excluded_loss": excluded,
        "gini_embed": sum(g_embed) / len(g_embed),
        "gini_unembed": gini(unembed_fourier_norms(model, cfg.p)),
        "key_freq_explained": key_freq_share(acts, cfg, freqs),
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
        # what the measures read: every pair (x, y, =) in x-major order, p classes (expmod's)
        grid = tuple(dataset.inputs.shape) == (cfg.p ** 2, 3) and dataset.d_vocab_out == cfg.p
        if not (measurable(cfg) and grid):
            raise ConfigError("progress measures need the expmod task with 2 operands and an MLP "
                              "(all p^2 pairs (x, y, =), p classes)")

    def due(self, epoch: int, final: bool = False) -> bool:
        return final or epoch % self.every == 0

    def on_eval(self, trainer, row: dict[str, Any], checkpoint: bool, final: bool = False) -> None:
        if not self.due(int(row["epoch"]), final):
            return
        # synced_model(): in a stacked pack the member's own model is brought up to date first
        values = progress_measures(trainer.synced_model(), self.cfg, self.dataset, self.threshold)
        values[KEY_FREQS] = " ".join(str(k) for k in values[KEY_FREQS])
        row.update(values)

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        pass
