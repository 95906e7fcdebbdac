"""The figures of one run (matplotlib, Agg backend: no display needed).

They are part of the run's record: :func:`write_run_figures` is what
``grokcore.records.write_run_folder`` draws into a ``--out`` folder or a sweep trial's record,
and what a sweep's driver draws later from that record. They live here, not in ``analysis``,
because grokcore imports neither ``analysis`` nor ``sweeps`` (ARCHITECTURE.md); the analysis
uses them too (``analysis.inspect``). Each function takes plain data (history rows, a summary
dict, a model and its dataset) and writes one image file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# torch and grokcore.progress are imported by the functions that need them: a table's figures
# (analysis.figures_km) need only save_figure, and torch takes seconds to import.


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (making the folder), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _rows(history: Any) -> list[dict[str, float]]:
    """Accept a list of row dicts or a pandas DataFrame with an ``epoch`` column."""
    if hasattr(history, "to_dict"):
        return history.to_dict("records")
    return [dict(r) for r in history]


def _column(rows: list[dict[str, float]], key: str) -> list[float]:
    """The values of ``key``; NaN where a row lacks it or holds None (e.g. an empty test group)."""
    return [math.nan if r.get(key) is None else float(r[key]) for r in rows]


# The measured phases (grokcore.signals.measure_phases), shaded in turn from epoch 0.
PHASE_STYLE = (("phase_memorization_end", "memorization", "tab:orange"),
               ("phase_circuit_end", "circuit formation", "tab:green"),
               ("phase_cleanup_end", "cleanup", "tab:purple"))


def mark_phases(ax, phases: Mapping[str, Any] | None) -> None:
    """Shade the measured phases: [0, mem], [mem, circuit], [circuit, cleanup]."""
    start = 0
    for key, label, color in PHASE_STYLE:
        end = (phases or {}).get(key)
        if end is None or (isinstance(end, float) and math.isnan(end)):
            break
        ax.axvspan(start, end, color=color, alpha=0.08, label=f"{label} (to {int(end)})")
        ax.axvline(end, color=color, lw=0.8, ls="--")
        start = end


def plot_training_curves(history: Iterable[Mapping[str, float]] | Any,
                         summary: Mapping[str, Any] | None, path: str | Path,
                         title: str | None = None,
                         phases: Mapping[str, Any] | None = None) -> Path:
    """Loss (log scale) and accuracy against epoch, train and test, one panel each; where some
    test examples' classes also occur in training, the accuracy on the others (unseen classes).

    From ``summary``: the memorization epoch is a dashed line, the grok epoch a solid one, and
    each loss spike a red triangle on the loss panel plus a dotted line. ``phases`` (measured
    phase ends) are shaded. Returns the path written.
    """
    summary = summary or {}
    rows = _rows(history)
    epochs = _column(rows, "epoch")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)

    for key, colour in (("train_loss", "tab:blue"), ("test_loss", "tab:orange")):
        values = [v if v > 0 else math.nan for v in _column(rows, key)]  # log scale: no zeros
        ax_loss.plot(epochs, values, color=colour, label=key.replace("_", " "))
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    for key, colour in (("train_acc", "tab:blue"), ("test_acc", "tab:orange")):
        ax_acc.plot(epochs, _column(rows, key), color=colour, label=key.replace("_", " "))
    if any(r.get("test_acc_seen") is not None for r in rows):  # some test classes also train
        ax_acc.plot(epochs, _column(rows, "test_acc_unseen"), color="tab:red", linestyle="--",
                    label="test acc, classes unseen in training")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")

    mem, grok = summary.get("memorization_epoch"), summary.get("threshold_epoch")
    for ax in (ax_loss, ax_acc):
        mark_phases(ax, phases)
        if mem is not None:
            ax.axvline(mem, color="grey", linestyle="--", linewidth=1, label=f"memorized @ {mem}")
        if grok is not None:
            what = summary.get("outcome") or summary.get("status", "")
            ax.axvline(grok, color="green", linestyle="-", linewidth=1,
                       label=f"threshold held from {grok} ({what})")
    spikes = list(summary.get("spike_epochs") or [])
    if spikes:
        for epoch in spikes:
            ax_loss.axvline(epoch, color="red", linestyle=":", linewidth=0.8)
        top = ax_loss.get_ylim()[1]
        ax_loss.plot(spikes, [top] * len(spikes), "v", color="red", clip_on=False,
                     label=f"loss spikes ({len(spikes)})")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.suptitle(title or (f"status: {summary['status']}" if "status" in summary
                           else "loss and accuracy"))
    return save_figure(fig, path, dpi=100)


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
    from grokcore import progress

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


# ---- the progress measures and the Fourier views of an expmod run (grokcore/progress.py) -------
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
    return save_figure(fig, path)


def plot_embedding_fourier(model, cfg, path) -> Path:
    """Norms of the Fourier components of W_E (token rows relabelled by t^a and by t^b)."""
    from grokcore import progress

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
    return save_figure(fig, path)


def plot_neuron_fourier(model, cfg, dataset, path) -> Path:
    """Each MLP neuron's share of variance by frequency (rows sorted by their best frequency)."""
    from grokcore import progress

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
    return save_figure(fig, path)


def plot_unembed_fourier(model, cfg, path) -> Path:
    """|W_L| in the Fourier basis over the output class (neurons x components) and its norms."""
    from grokcore import progress

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
    return save_figure(fig, path)


def plot_attention_patterns(model, cfg, dataset, path, max_heads: int = 8) -> Path:
    """Attention from the last position ('=') to the first operand, per head, over the (x, y)
    grid of inputs (TransformerLens hook ``blocks.0.attn.hook_pattern`` via run_with_cache)."""
    import torch

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
    return save_figure(fig, path)


def _sparse_ticks(ax, labels: list[str], every: int = 0) -> None:
    every = every or max(1, len(labels) // 24)
    ax.set_xticks(range(0, len(labels), every))
    ax.set_xticklabels(labels[::every], rotation=90, fontsize=6)
