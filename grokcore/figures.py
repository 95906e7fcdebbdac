"""The figures of one run (matplotlib, Agg backend: no display needed).

They are part of the run's record: :func:`write_run_figures` is what
``grokcore.records.write_run_folder`` draws into a ``--out`` folder or a sweep trial's record,
and what a sweep's driver draws later from that record: the training curves of every run, then
the task's own figures (its ``draw_figures`` hook; expmod's are in
``grokcore.tasks.expmod_figures``). They live here, not in ``analysis``, because grokcore
imports neither ``analysis`` nor ``sweeps`` (ARCHITECTURE.md); the analysis uses them too. Each
function takes plain data (history rows, a summary dict, a model and its dataset) and writes one
image file. This module imports nothing of grokcore: the tasks' figures build on its helpers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 110, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG (making the folder), close it, return the path. ``tight`` crops it
    to what is drawn, which draws it twice; a figure laid out by :func:`set_margins` is saved
    with ``tight=False``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path


def set_margins(fig, left: float = 0.7, right: float = 0.2, bottom: float = 0.55,
                top: float = 0.45, wspace: float | None = None,
                hspace: float | None = None) -> None:
    """Fixed margins around the axes, in inches (``wspace``, ``hspace``: between axes, as a
    fraction of their size). A run's figures are drawn for every run of a sweep, and a layout
    engine (constrained, tight) or a tight crop measures every label by drawing the figure once
    more: with fixed margins one draw saves it, in about three quarters of the time
    (``benchmarks/figure_speed.py``)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wspace, hspace=hspace)


def log_y(ax) -> None:
    """A log-scale y axis whose in-between labels stay short (4.775, 2e-01): matplotlib's own
    would write 4.775x10^0 on a loss that moved less than a decade, wider than fixed margins."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False,
                                                     minor_thresholds=(1, 0.4)))


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
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    set_margins(fig, left=0.95, top=0.4, wspace=0.2)  # room for log labels (4.775, 1e-05)

    for key, colour in (("train_loss", "tab:blue"), ("test_loss", "tab:orange")):
        values = [v if v > 0 else math.nan for v in _column(rows, key)]  # log scale: no zeros
        ax_loss.plot(epochs, values, color=colour, label=key.replace("_", " "))
    log_y(ax_loss)
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
    return save_figure(fig, path, dpi=100, tight=False)


def write_run_figures(cfg, history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                      model, dataset, folder, *, task) -> list[Path]:
    """The figures of one finished run, written into ``folder``; returns their paths.

    Every run: its training curves with the measured phases shaded (``curves.png``; the phases
    come from the summary, measured with the signals). Then the task's own, from its hook
    ``task.draw_figures`` (see ``grokcore.tasks.base.TaskBase``). ``task`` is the run's task,
    ``grokcore.tasks.TASKS[cfg.task]``: the caller looks it up, so that this module imports no
    task and a task's figures may use its helpers. Takes the run's parts, not a trainer, so
    that a sweep's driver can draw them later from the run's record
    (``sweeps.figures_after.draw_from_record``).
    """
    folder = Path(folder)
    written = [plot_training_curves(history, summary, folder / "curves.png",
                                    title=_title(task, cfg, summary), phases=summary)]
    return written + task.draw_figures(cfg, history, summary, model.to("cpu"), dataset, folder)


def _title(task, cfg, summary: Mapping[str, Any]) -> str:
    """The task and the fields that name its configuration (as in the grok table)."""
    keys = " ".join(f"{k}={getattr(cfg, k)}" for k in task.table_keys)
    return (f"{cfg.task} {keys} frac={cfg.frac_train} {cfg.dtype} seed={cfg.seed}: "
            f"{summary.get('outcome') or summary['status']}")
