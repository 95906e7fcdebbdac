"""Kaplan-Meier figure of threshold epochs: the share of runs that have not yet reached the
threshold (test accuracy held >= 0.99 to the end) against the epoch.

One step curve per configuration (a group of trials by the key columns), with a '|' tick on the
curve at every censored run (one that had not reached it when it stopped). With a ``style_key``
(the split, in Table 1) a configuration keeps its colour across that key's values, which differ
by line style instead, so the two splits of one (a, b, p) are easy to tell and to match.
Diverged, failed and unfinished runs are left out of the curves (the legend says how many).
The numbers come from ``analysis.stats``; this module only draws (matplotlib, Agg backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from grokcore.figures import save_figure
from analysis.stats import group_trials, km_curve, run_times


def _label(keys: Sequence[str], name: tuple, k: int, n: int, left_out: int) -> str:
    text = ", ".join(f"{key}={value}" for key, value in zip(keys, name))
    text += f" ({k}/{n} reached"
    return text + (f", {left_out} left out)" if left_out else ")")


LINE_STYLES = ("-", "--", ":", "-.")


def curve_styles(names: Sequence[tuple], keys: Sequence[str], style_key: str | None = None
                 ) -> dict[tuple, tuple[Any, str]]:
    """(colour, line style) of each row name: one colour per row apart from ``style_key``, and
    one line style per value of ``style_key`` (solid for the value with the most rows)."""
    import matplotlib.pyplot as plt

    at = list(keys).index(style_key) if style_key in keys else None
    rest = [n if at is None else n[:at] + n[at + 1:] for n in names]
    colour_of = {r: i for i, r in enumerate(dict.fromkeys(rest))}
    palette = plt.get_cmap("tab10" if len(colour_of) <= 10 else "tab20")
    values = [None if at is None else n[at] for n in names]
    by_count = sorted(dict.fromkeys(values), key=lambda v: -values.count(v))
    return {n: (palette(colour_of[r] % palette.N), LINE_STYLES[by_count.index(v) % 4])
            for n, r, v in zip(names, rest, values)}


def draw_km_curve(ax, times, events, label: str, marker_size: int = 10, **style) -> None:
    """One KM step curve from epoch 0, with a '|' at each censored run (``style``: matplotlib's
    color, linestyle)."""
    curve = km_curve(times, events)
    (line,) = ax.step([0.0, *curve.times], [1.0, *curve.survival], where="post", label=label,
                      **style)
    if curve.censored_times.size:
        ax.plot(curve.censored_times, curve.censored_survival, linestyle="none", marker="|",
                markersize=marker_size, color=line.get_color())


def km_axes(ax, ylabel: str, title: str) -> None:
    """The axes of a KM figure: epochs from 0, shares from 0 to 1, a light grid."""
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(title)


def plot_km(trials: pd.DataFrame, keys: Sequence[str], path: str | Path,
            title: str | None = None, rows: Sequence[Any] | None = None,
            style_key: str | None = None) -> Path:
    """Draw one KM curve per row of ``trials`` grouped by ``keys`` (or only ``rows``, key tuples)
    and save a PNG at ``path``; returns the path. k/n in the legend: grokked runs out of the
    runs in the estimate (reached + not reached). ``style_key``: see the module doc."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = list(keys)
    groups = group_trials(trials, keys)
    if rows is not None:
        wanted = [r if isinstance(r, tuple) else (r,) for r in rows]
        groups = {r: groups[r] for r in wanted if r in groups}
    styles = curve_styles(list(groups), keys, style_key)
    many = len(groups) > 6  # then the legend goes beside the axes, where it hides no curve
    fig, ax = plt.subplots(figsize=(11 if many else 7, 4.5))
    for name, group in groups.items():
        times, grokked = run_times(group)
        left_out = len(group) - len(times)
        label = _label(keys, name, int(grokked.sum()), len(times), left_out)
        colour, style = styles[name]
        if len(times) == 0:
            ax.plot([], [], label=label, color=colour, linestyle=style)  # keeps it in the legend
            continue
        draw_km_curve(ax, times, grokked, label, color=colour, linestyle=style)
    km_axes(ax, "share of runs not yet at the threshold",
            title or "Kaplan-Meier: runs whose test accuracy has not yet held the threshold "
            "('|' censored)")
    if many:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


FEW_VALUES = 4  # a fractional covariate with no more values is a setting: one curve per value


def covariate_classes(frame: pd.DataFrame, names: Sequence[str]) -> pd.Series:
    """Each run's class over the covariates ``names``: a covariate of whole or non-numeric
    values (bijective, p, dtype...) or of at most FEW_VALUES values (a setting: frac_train) by
    its value, a fractional one of more values (leakage, label_entropy...) as above zero or at
    zero."""
    parts = []
    for name in names:
        column = frame[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if not numeric or not (column.dropna() % 1 != 0).any() \
                or column.nunique() <= FEW_VALUES:
            parts.append(column.map(lambda v, n=name: f"{n}={v:g}" if isinstance(v, float)
                                    else f"{n}={v}"))
        else:
            parts.append(column.map(lambda v, n=name: f"{n}>0" if v > 0 else f"{n}=0"))
    return pd.concat(parts, axis=1).agg(", ".join, axis=1)


def plot_km_classes(frame: pd.DataFrame, names: Sequence[str], path: str | Path,
                    event_name: str = "grokked") -> Path:
    """One KM curve per class of the covariates ``names`` (``covariate_classes``) over a frame
    of ``duration`` and ``event`` (``analysis.hazard.hazard_frame``: the event is the outcome
    grokked, a lookup is censored); '|' marks a censored run. Saves a PNG at ``path``."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    classes = covariate_classes(frame, names)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label in sorted(classes.unique()):
        part = frame[classes == label]
        text = f"{label} ({int(part['event'].sum())}/{len(part)} {event_name})"
        draw_km_curve(ax, part["duration"], part["event"], text, marker_size=8)
    km_axes(ax, f"share of runs not yet {event_name}",
            f"Kaplan-Meier by {', '.join(names)} ('|' censored; lookup censored)")
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
