"""Figures of the progress measures, of a model in the Fourier basis, of residues and of a sweep.

Every function writes one PNG (matplotlib, Agg backend) and returns its path. Histories are a
trainer's ``history`` (list of row dicts) or a ``history.csv`` read into a DataFrame; ``phases``
is ``grokcore.signals.measure_phases(history)``. Kept apart from ``analysis/figures.py`` (the
sweeps' training-curve figure) so the two can grow without conflicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from analysis.figures import mark_phases, plot_training_curves, save_figure  # noqa: E402
from grokcore import progress  # noqa: E402

def _frame(history) -> pd.DataFrame:
    return history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))


def _save(fig, path) -> Path:
    return save_figure(fig, path)


def plot_loss_curves(history, path, phases: dict[str, Any] | None = None, title: str = "") -> Path:
    """Train/test loss (log scale) and accuracy against epoch, with the measured phases shaded."""
    return plot_training_curves(history, None, path, title or None, phases)


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
    ax.set_yscale("log")
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
    fig.tight_layout()
    return _save(fig, path)


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
    return _save(fig, path)


def plot_neuron_fourier(model, cfg, dataset, path) -> Path:
    """Each MLP neuron's share of variance by frequency (rows sorted by their best frequency)."""
    _, acts = progress.last_position(model, dataset.inputs)
    fractions, variance = progress.neuron_frequency_fractions(acts.detach().cpu(), cfg)
    alive = variance > 0
    best = fractions.argmax(dim=1)
    order = sorted(range(len(best)), key=lambda i: (not bool(alive[i]), int(best[i]),
                                                    -float(fractions[i].max())))
    fig, ax = plt.subplots(figsize=(8, 6))
    image = ax.imshow(fractions[order].numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest",
                      extent=(0.5, fractions.shape[1] + 0.5, len(order), 0))
    fig.colorbar(image, ax=ax, label="share of the neuron's variance")
    freqs = progress.key_frequencies(fractions)
    ax.set_xlabel("frequency k (in (u, v) coordinates)")
    ax.set_ylabel("neuron (sorted by best frequency)")
    ax.set_title(f"MLP neurons by Fourier frequency; key frequencies {freqs or 'none'}")
    return _save(fig, path)


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
    return _save(fig, path)


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
    return _save(fig, path)


def plot_residue_distribution(p: int, pairs: Sequence[tuple[int, int]], path) -> Path:
    """Counts of z = (x^a + y^b) mod p over all p^2 inputs, one panel per (a, b) (the seed's
    Figure 2), with the label entropy of each from the task's own statistics."""
    from grokcore.config import RunConfig
    from grokcore.tasks import build_dataset

    pairs = list(pairs)
    cols = min(3, len(pairs))
    rows = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3 * rows), squeeze=False)
    for ax, (a, b) in zip(axes.flat, pairs):
        stats = build_dataset(RunConfig(p=p, a=a, b=b)).stats
        ax.bar(range(p), stats["label_counts"], width=1.0)
        ax.axhline(p, color="k", lw=0.8, ls=":")  # uniform: p inputs per residue
        ax.set_title(f"a={a}, b={b}: entropy {stats['label_entropy']:.3f}", fontsize=9)
        ax.set_xlabel("z")
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle(f"distribution of z = (x^a + y^b) mod {p}")
    fig.tight_layout()
    return _save(fig, path)


def heatmap_cells(table: pd.DataFrame, p: int | None = None,
                  task: str = "expmod") -> tuple[int, dict[str, pd.DataFrame]]:
    """(p, the heat map's cells per split): for each split, one row per (a, b) with the KM
    median threshold epoch, runs that reached the threshold, runs, and what the rows show. Splits
    stay apart: a cell merging a split that groks with one that does not would describe neither. The
    split with the most rows comes first. ``p``: the most common p of the task's rows when None."""
    t = table[table["task"] == task]
    if p is None:
        p = int(t["p"].mode().iloc[0])
    t = t[t["p"] == p].assign(
        threshold_km_median=lambda d: pd.to_numeric(d["threshold_km_median"], errors="coerce"))
    if t.empty:
        raise ValueError(f"the table has no {task} rows for p={p}")
    shows = t["shows"] if "shows" in t else pd.Series("grokking", index=t.index)
    split = t["split"].astype(str) if "split" in t else pd.Series("", index=t.index)
    t = t.assign(shows=shows.astype(str), split=split)
    return p, {name: rows.groupby(["a", "b"]).agg(
        epoch=("threshold_km_median", "median"), reached=("reached", "sum"), runs=("runs", "sum"),
        shows=("shows", lambda words: ", ".join(sorted(set(words)))))
        for name, rows in sorted(t.groupby("split"), key=lambda kv: -len(kv[1]))}


def plot_grok_heatmap(table: pd.DataFrame, path, p: int | None = None, task: str = "expmod") -> Path:
    """Kaplan-Meier median threshold epoch over (a, b) for one p
    (``analysis.grok_table.build_table`` output), one panel per split, on one colour scale; grey
    where it is not reached (fewer than half the runs reached the threshold) or not run, with k/n
    reached written in each cell, and what a cell shows when that is not grokking (its ``shows``,
    e.g. lookup: the threshold was reached on test pairs with a training twin), hatched."""
    from matplotlib.colors import Normalize

    p, panels = heatmap_cells(table, p, task)
    n = int(max(max(c.index.get_level_values(0).max(), c.index.get_level_values(1).max())
                for c in panels.values()))
    epochs = pd.concat([c.epoch for c in panels.values()]).dropna()
    norm = Normalize(*(epochs.min(), epochs.max()) if len(epochs) else (0, 1))
    fig, axes = plt.subplots(1, len(panels), figsize=(1 + 0.7 * n * len(panels), 0.7 * n + 0.5),
                             squeeze=False)
    for ax, (split, cells) in zip(axes[0], panels.items()):
        image = _heat_panel(ax, cells, n, norm)
        ax.set_title(f"p = {p}" + (f", split by {split}" if split else ""))
    fig.colorbar(image, ax=list(axes[0]), label="Kaplan-Meier median threshold epoch")
    return _save(fig, path)


def _heat_panel(ax, cells: pd.DataFrame, n: int, norm):
    import numpy as np

    grid = np.full((n, n), np.nan)
    for (a, b), row in cells.iterrows():
        grid[a - 1, b - 1] = row.epoch
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, origin="lower",
                      extent=(0.5, n + 0.5, 0.5, n + 0.5))
    for (a, b), row in cells.iterrows():
        text = f"{int(row.reached)}/{int(row.runs)}"
        if row.shows != "grokking":
            text += f"\n{row.shows}"
            ax.add_patch(plt.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, hatch="//",
                                       edgecolor=(1, 1, 1, 0.45), lw=0))
        ax.text(b, a, text, ha="center", va="center", fontsize=6 if "\n" in text else 7,
                color="w" if not np.isnan(grid[a - 1, b - 1]) else "k",
                bbox=dict(facecolor="k", alpha=0.5, lw=0, pad=1) if "\n" in text else None)
    ax.set_xlabel("b")
    ax.set_ylabel("a")
    return image


def _sparse_ticks(ax, labels: list[str], every: int = 0) -> None:
    every = every or max(1, len(labels) // 24)
    ax.set_xticks(range(0, len(labels), every))
    ax.set_xticklabels(labels[::every], rotation=90, fontsize=6)


def write_run_figures(cfg, history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                      model, dataset, folder) -> list[Path]:
    """The figures of one finished run, written into ``folder``; returns their paths.

    Every run: its training curves with the measured phases shaded (``curves.png``; the phases
    come from the summary, measured with the signals). A sorting run adds its attention pattern
    (``attention.png``); a run the progress measures are defined for (expmod with two operands
    and an MLP) the progress measures over training and the Fourier views of its final weights.
    Takes the run's parts, not a trainer, so that a sweep's driver can draw them later from the
    run's record (``sweeps.figures_after.draw_from_record``).
    """
    folder = Path(folder)
    written = [plot_training_curves(history, summary, folder / "curves.png",
                                    title=_title(cfg, summary), phases=summary)]
    model = model.to("cpu")
    if cfg.task == "sorting":  # its one head's pattern is the mechanism: where each output looks
        from grokcore.tasks.sorting import attention_figure

        written.append(attention_figure(model, dataset, folder / "attention.png"))
    if not progress.measures_apply(cfg):
        return written
    if any("restricted_loss" in row for row in history):
        written.append(plot_progress_measures(history, folder / "progress_measures.png", summary))
    written += [plot_embedding_fourier(model, cfg, folder / "embedding_fourier.png"),
                plot_neuron_fourier(model, cfg, dataset, folder / "neuron_fourier.png"),
                plot_unembed_fourier(model, cfg, folder / "unembed_fourier.png"),
                plot_attention_patterns(model, cfg, dataset, folder / "attention.png")]
    return written


def _title(cfg, summary: Mapping[str, Any]) -> str:
    """The task and the fields that name its configuration (as in the grok table)."""
    from grokcore.tasks import TASKS

    keys = " ".join(f"{k}={getattr(cfg, k)}" for k in TASKS[cfg.task].table_keys)
    return (f"{cfg.task} {keys} frac={cfg.frac_train} {cfg.dtype} seed={cfg.seed}: "
            f"{summary.get('outcome') or summary['status']}")
