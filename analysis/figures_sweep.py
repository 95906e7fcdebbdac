"""A sweep's trials on one plot: each trial's test accuracy (solid) and unseen-class accuracy
(dashed) against epoch, log-scaled, in the trial's colour (its MLflow ``mlflow.runColor``, the
one the runs table and charts show), with its threshold epoch marked and its outcome in the
legend. ``analysis.publish`` draws it onto the sweep's parent run, where MLflow's chart view shows
it (``sweeps.mlflow_view``). matplotlib only draws here; the data come in as plain lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from grokcore.figures import save_figure

# More lines than this on one plot are a tangle: the figure keeps the first ones (by name).
MAX_TRIALS = 40


def plot_trials_compared(trials: Sequence[Mapping[str, Any]], path: str | Path,
                         threshold: float = 0.99, total: int | None = None) -> Path:
    """``trials``: dicts with ``name``, ``color`` (None: matplotlib's next), ``outcome``,
    ``threshold_epoch`` (None: not reached), ``test_acc`` and ``unseen``, each (epochs, values)
    (``unseen`` empty where the task has no unseen classes); at most :data:`MAX_TRIALS` are
    drawn, and the title says so when ``total`` (the sweep's trials) is more. Writes a PNG;
    returns its path."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = list(trials)[:MAX_TRIALS]
    # Nearly square, legend below: MLflow's chart view shows it as a 256-pixel square thumbnail
    # (a click opens it whole).
    fig, ax = plt.subplots(figsize=(9, 8))
    for trial in shown:
        epochs, acc = _after_zero(*trial["test_acc"])  # a log axis has no epoch 0
        held = trial.get("threshold_epoch")
        label = f"{trial['name']}: {trial.get('outcome') or '-'}"
        label += f", threshold epoch {int(held)}" if held is not None else ""
        (line,) = ax.plot(epochs, acc, color=trial.get("color"), lw=1.6, label=label)
        unseen_epochs, unseen = _after_zero(*(trial.get("unseen") or ((), ())))
        if unseen:
            ax.plot(unseen_epochs, unseen, color=line.get_color(), lw=1.0, ls="--")
        if held is not None and held in epochs:
            ax.plot([held], [acc[epochs.index(held)]], marker="o", ms=8,
                    color=line.get_color(), mec="black", mew=0.8, zorder=3)
    ax.axhline(threshold, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel("epoch (log scale)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3, which="both")
    total = max(total or 0, len(trials))
    more = f" (the first {len(shown)} of {total} by name)" if total > len(shown) else ""
    ax.set_title(f"{len(shown)} trials{more}: test accuracy (solid), unseen-class accuracy "
                 f"(dashed);\no the threshold epoch (held >= {threshold:g} from there on)",
                 fontsize="medium")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1),
              ncol=1 if len(shown) <= 12 else 2)
    return save_figure(fig, path, dpi=100)


def _after_zero(epochs: Sequence[int], values: Sequence[float]) -> tuple[list, list]:
    pairs = [(e, v) for e, v in zip(epochs, values) if e > 0]
    return [e for e, _ in pairs], [v for _, v in pairs]
