"""Figures across runs: the residue distributions of (a, b) and a sweep's grok heat map.

Every function writes one PNG (matplotlib, Agg backend) and returns its path. The figures of one
run (its curves, progress measures, Fourier views and attention) are part of the run's record
and live in ``grokcore.figures`` (and a task's own, e.g. ``grokcore.tasks.expmod_figures``),
which ``grokcore.records.write_run_folder`` calls: grokcore may not import analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from grokcore.figures import plot_training_curves, save_figure  # noqa: E402


def _save(fig, path) -> Path:
    return save_figure(fig, path)


def plot_loss_curves(history, path, phases: dict[str, Any] | None = None, title: str = "") -> Path:
    """Train/test loss (log scale) and accuracy against epoch, with the measured phases shaded."""
    return plot_training_curves(history, None, path, title or None, phases)


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
    (``analysis.grok_table.build_table`` output), one panel per split, on one logarithmic colour scale. Coloured only where every run
    of the cell generalized (grokking or no delay); grey where the median is not reached (fewer
    than half the runs reached the threshold), where the runs reached it by lookup (the
    threshold was reached on test pairs with a training twin: not a time to generalize, so not
    coloured as fast) or where the cell was not run. Each cell says k/n runs reaching the
    threshold and, hatched, what it shows when that is not grokking."""
    from matplotlib.colors import LogNorm

    p, panels = heatmap_cells(table, p, task)
    n = int(max(max(c.index.get_level_values(0).max(), c.index.get_level_values(1).max())
                for c in panels.values()))
    panels = {split: cells.assign(epoch=coloured_epochs(cells)) for split, cells in panels.items()}
    epochs = pd.concat([c.epoch for c in panels.values()]).dropna()
    # Threshold epochs span decades (tens to tens of thousands): a log scale keeps both ends apart.
    low, high = (epochs.min(), epochs.max()) if len(epochs) else (1, 10)
    norm = LogNorm(low, high) if high > low else LogNorm(low / 2, low * 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(1 + 0.7 * n * len(panels), 0.7 * n + 0.5),
                             squeeze=False)
    for ax, (split, cells) in zip(axes[0], panels.items()):
        image = _heat_panel(ax, cells, n, norm)
        ax.set_title(f"p = {p}" + (f", split by {split}" if split else ""))
    fig.colorbar(image, ax=list(axes[0]), label="Kaplan-Meier median threshold epoch")
    fig.text(0.01, 0.01, f"k/n: runs reaching the threshold; {SHORT_LEGEND}; grey: not reached,"
             " lookup or not run", fontsize=7)
    return _save(fig, path)


# What a cell's runs show when its median is a time to generalize (``analysis.table.SHOWS``).
GENERALIZED = {"grokking", "no delay"}


def generalized(shows: str) -> bool:
    """Whether every run of a cell generalized (grokking or no delay), not lookup or none."""
    words = {part.strip().rsplit(" ", 1)[0] if part.strip()[-1:].isdigit() else part.strip()
             for part in shows.split(",")}
    return bool(words) and words <= GENERALIZED


# Short words for a cell's outcomes (the heat map's legend spells them out).
SHORT = {"grokking": "G", "no delay": "D", "lookup": "L", "none": "N", "diverged": "X"}
SHORT_LEGEND = "G grokking, D no delay, L lookup, N none, X diverged"


def short_shows(shows: str) -> str:
    """``grokking 2, lookup 1`` -> ``2G 1L``; ``lookup`` -> ``L``: fits in a cell."""
    parts = []
    for part in shows.split(","):
        word, _, count = part.strip().rpartition(" ")
        if not count.isdigit():
            word, count = part.strip(), ""
        parts.append(f"{count}{SHORT.get(word, word)}")
    return " ".join(parts)


def coloured_epochs(cells: pd.DataFrame) -> pd.Series:
    """The cells' median epochs where they are a time to generalize; NaN (grey) elsewhere: a
    median of lookup crossings is no grok time, and colouring it would show it as fast."""
    return cells.epoch.where(cells.shows.map(generalized))


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
            text += f"\n{short_shows(row.shows)}"
            ax.add_patch(plt.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, hatch="//",
                                       edgecolor=(1, 1, 1, 0.45), lw=0))
        coloured = not np.isnan(grid[a - 1, b - 1])
        ax.text(b, a, text, ha="center", va="center", fontsize=6 if "\n" in text else 7,
                color="w" if coloured else "k",
                bbox=dict(facecolor="k" if coloured else "w", alpha=0.5, lw=0, pad=1)
                if "\n" in text else None)
    ax.set_xlabel("b")
    ax.set_ylabel("a")
    return image

