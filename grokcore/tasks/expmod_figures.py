"""The expmod task's own figures of a run (``ExpModTask.draw_figures``), where its progress
measures apply (two operands and an MLP): the progress measures over training, the Fourier views
of the final weights and the attention from '=' over the input grid.

Drawn with ``grokcore.figures``'s helpers (the same style and saving as a run's curves) from
``grokcore.progress``'s measures; ``analysis.inspect`` draws the views of a stored run with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import grokcore.progress as progress  # noqa: E402
from grokcore.figures import log_y, mark_phases, save_figure, set_margins  # noqa: E402


def draw_run_figures(cfg, history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                     model, dataset, folder) -> list[Path]:
    """The progress measures over training (``progress_measures.png``, when the history holds
    them: ``measure_every`` > 0) and the views of the final ``model`` (on the CPU):
    ``embedding_fourier.png``, ``neuron_fourier.png``, ``unembed_fourier.png`` and
    ``attention.png``, written into ``folder``; returns their paths."""
    folder = Path(folder)
    written = []
    if any("restricted_loss" in row for row in history):
        written.append(plot_progress_measures(history, folder / "progress_measures.png", summary))
    written += [plot_embedding_fourier(model, cfg, folder / "embedding_fourier.png"),
                plot_neuron_fourier(model, cfg, dataset, folder / "neuron_fourier.png"),
                plot_unembed_fourier(model, cfg, folder / "unembed_fourier.png"),
                plot_attention_patterns(model, cfg, dataset, folder / "attention.png")]
    return written


def _frame(history) -> pd.DataFrame:
    return history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))


def plot_progress_measures(history, path, phases: dict[str, Any] | None = None,
                           title: str = "") -> Path:
    """Restricted/excluded/train/test loss, Gini of W_E and W_L, sum of squared weights, and the
    share of MLP variance in the key frequencies, against epoch (measured rows only)."""
    df = _frame(history)
    if "restricted_loss" not in df:
        raise ValueError("the history has no progress measures; train with measure_every > 0")
    m = df.dropna(subset=["restricted_loss"])
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    for name, color in (("train_loss", "tab:blue"), ("test_loss", "tab:red"),
                        ("restricted_loss", "tab:green"), ("excluded_loss", "tab:purple")):
        ax.plot(m["epoch"], m[name].clip(lower=1e-12), label=name, color=color)
    log_y(ax)
    ax.set_title("losses")
    ax = axes[0, 1]
    ax.plot(m["epoch"], m["gini_embed"], label="Gini of W_E Fourier norms")
    ax.plot(m["epoch"], m["gini_unembed"], label="Gini of W_L Fourier norms")
    ax.set_ylim(0, 1)
    ax.set_title("sparsity in the Fourier basis")
    ax = axes[1, 0]
    ax.plot(df["epoch"], df["sum_sq_weights"], color="k", label="sum of squared weights")
    ax.set_title("sum of squared weights")
    ax = axes[1, 1]
    ax.plot(m["epoch"], m["key_freq_explained"], label="MLP variance in key frequencies")
    ax.plot(m["epoch"], m["n_key_freqs"] / max(1.0, float(m["n_key_freqs"].max())),
            label="number of key frequencies (scaled)", ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_title("key frequencies")
    for ax in axes.flat:
        mark_phases(ax, phases)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.suptitle(title or "progress measures")
    set_margins(fig, left=0.95, top=0.55, wspace=0.2, hspace=0.3)
    return save_figure(fig, path, tight=False)


def plot_embedding_fourier(model, cfg, path) -> Path:
    """Norms of the Fourier components of W_E (token rows relabelled by t^a and by t^b)."""
    p = cfg.p
    fig, ax = plt.subplots(figsize=(11, 3.5))
    labels = progress.basis_labels(p)
    exponents = sorted({cfg.a, cfg.b})
    width = 0.8 / len(exponents)
    for i, e in enumerate(exponents):
        norms = progress.embed_fourier_norms(model.W_E, p, e).numpy()
        ax.bar([j + i * width for j in range(p)], norms, width=width,
               label=f"rows relabelled by t^{e} (Gini {progress.gini(norms):.2f})")
    _sparse_ticks(ax, labels)
    ax.set_ylabel("norm")
    ax.set_title("W_E in the Fourier basis")
    ax.legend(fontsize=7)
    set_margins(fig, bottom=0.5, top=0.35)
    return save_figure(fig, path, tight=False)


def plot_neuron_fourier(model, cfg, dataset, path) -> Path:
    """Each MLP neuron's share of variance by frequency (rows sorted by their best frequency)."""
    _, acts = progress.last_position(model, dataset.inputs)
    fractions, variance = progress.neuron_frequency_fractions(acts.detach().cpu(), cfg)
    alive = variance > 0
    best = fractions.argmax(dim=1)
    order = sorted(range(len(best)), key=lambda i: (not bool(alive[i]), int(best[i]),
                                                    -float(fractions[i].max())))
    fig, ax = plt.subplots(figsize=(8, 6))
    set_margins(fig, right=0.1, top=0.35)  # the colourbar and its label take the axes' right
    image = ax.imshow(fractions[order].numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest",
                      extent=(0.5, fractions.shape[1] + 0.5, len(order), 0))
    fig.colorbar(image, ax=ax, label="share of the neuron's variance")
    freqs = progress.key_frequencies(fractions)
    ax.set_xlabel("frequency k (in (u, v) coordinates)")
    ax.set_ylabel("neuron (sorted by best frequency)")
    ax.set_title(f"MLP neurons by Fourier frequency; key frequencies {freqs or 'none'}")
    return save_figure(fig, path, tight=False)


def plot_unembed_fourier(model, cfg, path) -> Path:
    """|W_L| in the Fourier basis over the output class (neurons x components) and its norms."""
    p = cfg.p
    wl = progress.unembed_matrix(model) @ progress.fourier_basis(p).T  # [d_mlp, p]
    norms = wl.norm(dim=0)
    fig, (ax_map, ax_bar) = plt.subplots(2, 1, figsize=(11, 7), height_ratios=(3, 1), sharex=True)
    ax_map.imshow(wl.abs().numpy(), aspect="auto", cmap="magma", interpolation="nearest",
                  extent=(-0.5, p - 0.5, wl.shape[0], 0))
    ax_map.set_ylabel("neuron")
    ax_map.set_title(f"W_L = W_out W_U in the Fourier basis (Gini {progress.gini(norms):.2f})")
    ax_bar.bar(range(p), norms.numpy())
    ax_bar.set_ylabel("norm")
    _sparse_ticks(ax_bar, progress.basis_labels(p))
    set_margins(fig, bottom=0.5, top=0.35, hspace=0.05)
    return save_figure(fig, path, tight=False)


def plot_attention_patterns(model, cfg, dataset, path, max_heads: int = 8) -> Path:
    """Attention from the last position ('=') to the first operand, per head, over the (x, y)
    grid of inputs (TransformerLens hook ``blocks.0.attn.hook_pattern`` via run_with_cache)."""
    p = cfg.p
    name = "blocks.0.attn.hook_pattern"
    with torch.no_grad():
        _, cache = model.run_with_cache(dataset.inputs, names_filter=lambda n: n == name)
    pattern = cache[name][:, :, -1, 0].float()  # [n, heads]: '=' attending to x
    heads = min(pattern.shape[1], max_heads)
    grid = pattern.reshape(p, p, -1)
    fig, axes = plt.subplots(1, heads, figsize=(3.2 * heads, 3.2), squeeze=False)
    for h in range(heads):
        ax = axes[0, h]
        ax.imshow(grid[:, :, h].numpy(), cmap="viridis", vmin=0, vmax=1, origin="lower")
        ax.set_title(f"head {h}")
        ax.set_xlabel("y")
        ax.set_ylabel("x")
    fig.suptitle("attention from '=' to x, over the input grid")
    set_margins(fig, left=0.45, right=0.1, bottom=0.5, top=0.6, wspace=0.3)
    return save_figure(fig, path, tight=False)


def _sparse_ticks(ax, labels: list[str], every: int = 0) -> None:
    every = every or max(1, len(labels) // 24)
    ax.set_xticks(range(0, len(labels), every))
    ax.set_xticklabels(labels[::every], rotation=90, fontsize=6)
