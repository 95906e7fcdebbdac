"""Survival statistics of threshold epochs: Kaplan-Meier medians, log-rank tests, Holm correction.

A run's *time* is its threshold epoch (the epoch from which test accuracy stays >= 0.99) when it
reached the threshold, and its ``epochs_run`` when it did not: such a run is right-censored there
(it might have reached it later). Diverged, failed and unfinished runs are counted but enter no
estimate. (Reaching the threshold is not grokking: a lookup run reaches it too; the outcome says
which, see grokcore.records. The function arguments below call the event ``grokked``.)

The estimators are scipy's (``scipy.stats.ecdf`` on ``scipy.stats.CensoredData`` for the
Kaplan-Meier survival function and its pointwise confidence band, ``scipy.stats.logrank`` for the
two-sample test); this module only reads off medians, guards the degenerate cases and applies
Holm's step-down correction. "Survival" here means "not yet reached": S(t) is the estimated
share of runs that have not reached the threshold by epoch t.

Public API::

    km_median(times, grokked, confidence_level=0.95, method="log-log") -> KMSummary
    km_curve(times, grokked) -> KMCurve
    logrank_p(times_a, grokked_a, times_b, grokked_b) -> float | None
    holm(pvalues) -> list
    survival_table(trials, keys, reference=None, confidence_level=0.95, method="log-log")
        -> DataFrame
    pairwise_logrank(trials, keys, rows) -> DataFrame
    logrank_pairs(trials, keys, pairs) -> DataFrame
    group_trials(trials, keys) -> dict[key tuple, DataFrame]
    run_times(group) -> (times, grokked) of the runs that enter the estimates
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from grokcore.records import NOT_REACHED, REACHED, STATUSES

# An event is a run whose grok signal reached the threshold and held it (status "reached", at its
# threshold epoch); "not_reached" runs are censored at epochs_run (grokcore.records: the names).
ESTIMABLE = (REACHED, NOT_REACHED)  # the statuses that enter the estimates
TABLE_COLUMNS = ("runs", "reached", "censored", "diverged", "failed", "unfinished",
                 "threshold_km_median", "threshold_km_ci_low", "threshold_km_ci_high",
                 "threshold_min", "threshold_max",
                 "logrank_p", "logrank_p_holm")
PAIR_COLUMNS = ("row_i", "row_j", "p", "p_holm")

# S(t) is a product of ratios computed in floating point, so a survival of exactly one half
# (e.g. 5 of 10 runs grokked) can come out as 0.5000000000000001; compare with this slack.
_HALF = 0.5 + 1e-12


@dataclass(frozen=True)
class KMSummary:
    """Kaplan-Meier summary of one group of runs.

    n: runs in the estimate (grokked + censored); k: events (grokked runs); median: the KM
    median grok epoch, None when S(t) never reaches 0.5 (the median is beyond the last time);
    ci_low / ci_high: the confidence interval of the median (None when not defined; a None
    ci_high with a defined ci_low means unbounded above). See ``km_median``.
    """

    n: int
    k: int
    median: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class KMCurve:
    """The KM step function for plotting: S jumps to ``survival[i]`` at ``times[i]`` (S = 1
    before ``times[0]``); ``censored_times`` are the censored runs' times (with repeats) and
    ``censored_survival`` the value of S there."""

    times: np.ndarray
    survival: np.ndarray
    censored_times: np.ndarray
    censored_survival: np.ndarray


def _censored_data(times: Any, grokked: Any) -> stats.CensoredData:
    t = np.asarray(times, dtype=float).reshape(-1)
    g = np.asarray(grokked, dtype=bool).reshape(-1)
    if t.shape != g.shape:
        raise ValueError(f"times and grokked differ in length ({t.size} and {g.size})")
    if not np.all(np.isfinite(t)):
        raise ValueError("times must be finite (a grok epoch or epochs_run for every run)")
    return stats.CensoredData(uncensored=t[g], right=t[~g])


def _sf(times: Any, grokked: Any):
    return stats.ecdf(_censored_data(times, grokked)).sf


def _bands(sf, confidence_level: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """scipy's pointwise band of S at ``sf.quantiles``, with its undefined points settled.

    Where S = 1 (only censorings so far) both bounds are 1. Where S = 0 (the last runs at risk
    all grokked) scipy's formula is undefined (NaN): the lower bound is set to 0 (it cannot
    exceed S) and the upper bound left NaN, which never counts as <= 0.5.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The confidence interval is undefined",
                                category=RuntimeWarning)
        ci = sf.confidence_interval(confidence_level=confidence_level, method=method)
    low = np.array(ci.low.probabilities, dtype=float)
    high = np.array(ci.high.probabilities, dtype=float)
    s = sf.probabilities
    low[s == 1], high[s == 1] = 1.0, 1.0
    low[s == 0], high[s == 0] = 0.0, np.nan
    return low, high


def _first_at_or_below_half(times: np.ndarray, values: np.ndarray) -> float | None:
    hit = np.flatnonzero(values <= _HALF)  # NaN compares False
    return float(times[hit[0]]) if hit.size else None


def km_median(times: Any, grokked: Any, confidence_level: float = 0.95,
              method: str = "log-log") -> KMSummary:
    """Kaplan-Meier median grok epoch and its confidence interval.

    ``times[i]`` is run i's grok epoch when ``grokked[i]``, else its epochs_run (censored).

    What is computed:

    * S(t), the KM estimate of the share of runs not yet grokked after epoch t, is
      ``scipy.stats.ecdf(CensoredData(uncensored=grok epochs, right=censored times)).sf``.
    * median = the smallest time t with S(t) <= 0.5 (no interpolation: when S equals 0.5
      exactly on an interval, its left end is taken). None when S stays above 0.5 (fewer than
      half grokked, as far as the censoring lets one see): report it as "> last time".
    * The interval inverts the pointwise band of S (``sf.confidence_interval(confidence_level,
      method=method)``; default "log-log", i.e. the exponential-Greenwood band built on
      log(-log S) with Greenwood's variance sum d / (n (n - d)), as in Brookmeyer & Crowley
      (1982) with that transform): the median's interval is the set of times at which the band
      contains 0.5. So
      ci_low = the first time at which the band's LOWER bound is <= 0.5 and
      ci_high = the first time at which the band's UPPER bound is <= 0.5
      (the lower bound drops faster, so ci_low <= median <= ci_high). ci_high is None when the
      upper bound never gets to 0.5 (the interval is unbounded above: the data cannot rule out a
      later median). Where S = 0 the band is undefined; there the lower bound is taken as 0 and
      the upper bound as undefined (not <= 0.5). Only times in the data are candidates, so the
      bounds are observed epochs.
    * No events: median, ci_low and ci_high are None. No runs: n = k = 0 and the rest None.
    """
    data = _censored_data(times, grokked)
    n, k = len(data), len(data) - data.num_censored()
    if k == 0:
        return KMSummary(n, 0, None, None, None)
    sf = stats.ecdf(data).sf
    q, s = sf.quantiles, sf.probabilities
    low, high = _bands(sf, confidence_level, method)
    return KMSummary(int(n), k, _first_at_or_below_half(q, s),
                     _first_at_or_below_half(q, low), _first_at_or_below_half(q, high))


def km_curve(times: Any, grokked: Any) -> KMCurve:
    """The KM survival step function and the censoring marks, for ``analysis.figures_km``."""
    t = np.asarray(times, dtype=float).reshape(-1)
    g = np.asarray(grokked, dtype=bool).reshape(-1)
    if t.size == 0:
        empty = np.empty(0)
        return KMCurve(empty, empty, empty, empty)
    sf = _sf(t, g)
    cens = np.sort(t[~g])
    return KMCurve(np.asarray(sf.quantiles, dtype=float),
                   np.asarray(sf.probabilities, dtype=float),
                   cens, np.asarray(sf.evaluate(cens), dtype=float).reshape(-1))


def logrank_p(times_a: Any, grokked_a: Any, times_b: Any, grokked_b: Any) -> float | None:
    """Two-sided log-rank p-value (``scipy.stats.logrank``) of group a against group b.

    None when the test is undefined: either group has no runs, or the statistic's variance is
    zero, which scipy reports as NaN (no events at all, or none while both groups are at risk,
    e.g. every event at one epoch that all remaining runs share).
    """
    a, b = _censored_data(times_a, grokked_a), _censored_data(times_b, grokked_b)
    if len(a) == 0 or len(b) == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.logrank(a, b, alternative="two-sided").pvalue)
    return p if math.isfinite(p) else None


def _missing(p: Any) -> bool:
    return p is None or (isinstance(p, float) and math.isnan(p))


def holm(pvalues: Iterable[float | None]) -> list:
    """Holm's step-down adjusted p-values, in the input order.

    Missing entries (None or NaN) are passed through unchanged and do not count in m. With the
    m present p-values sorted ascending, the i-th smallest (1-based) becomes
    max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    ps = list(pvalues)
    present = sorted((float(p), i) for i, p in enumerate(ps) if not _missing(p))
    m, out, running = len(present), list(ps), 0.0
    for rank, (p, i) in enumerate(present, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p))
        out[i] = running
    return out


def _key(value: Any, keys: Sequence[str]) -> tuple:
    """A group key as a tuple (a scalar is accepted for a single key column)."""
    if isinstance(value, tuple):
        key = value
    elif isinstance(value, list):
        key = tuple(value)
    else:
        key = (value,)
    if len(key) != len(keys):
        raise ValueError(f"row key {value!r} does not match the key columns {list(keys)}")
    return key


def group_trials(trials: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, pd.DataFrame]:
    """The trials by key tuple (sorted; NaN keys kept), after checking columns and statuses."""
    keys = list(keys)
    if not keys:
        raise ValueError("give at least one key column")
    missing = [c for c in (*keys, "status", "threshold_epoch", "epochs_run") if c not in trials]
    if missing:
        raise ValueError(f"trials lack the columns {missing}")
    unknown = sorted(set(trials["status"].astype(str)) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown statuses {unknown}; expected one of {list(STATUSES)}")
    return {_key(k, keys): g for k, g in trials.groupby(keys, sort=True, dropna=False)}


def run_times(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) of the runs that enter the estimates (reached and not_reached)."""
    g = group[group["status"].isin(ESTIMABLE)]
    grokked = (g["status"] == REACHED).to_numpy()
    held = pd.to_numeric(g["threshold_epoch"], errors="coerce").to_numpy(dtype=float)
    epochs_run = pd.to_numeric(g["epochs_run"], errors="coerce").to_numpy(dtype=float)
    times = np.where(grokked, held, epochs_run)
    bad = ~np.isfinite(times)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} run(s) lack a threshold_epoch (reached) or an "
                         "epochs_run (not_reached)")
    return times, grokked


def _none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def survival_table(trials: pd.DataFrame, keys: Sequence[str], reference: Any = None,
                   confidence_level: float = 0.95, method: str = "log-log") -> pd.DataFrame:
    """One row per configuration (group of ``trials`` by ``keys``, sorted by the keys).

    ``trials`` has the key columns, ``status`` (one of STATUSES), ``threshold_epoch`` (reached
    runs) and ``epochs_run`` (not_reached runs, where they are censored). The result has the key
    columns followed by exactly TABLE_COLUMNS: run counts by status (``censored`` =
    not_reached); the KM median threshold epoch and its interval (``km_median``; NaN where None:
    a NaN median with runs means "not reached", a NaN ci_high with a ci_low means unbounded
    above); the observed min and max threshold epoch among reached runs; the two-sided log-rank p of
    the row against the reference row (``reference``: a key tuple, or a scalar for one key;
    default the first row), NaN for the reference itself or where the test is undefined; and
    ``logrank_p_holm``, Holm over the non-reference rows' defined p-values.
    """
    keys = list(keys)
    groups = group_trials(trials, keys)
    if not groups:
        return pd.DataFrame(columns=[*keys, *TABLE_COLUMNS])
    names = list(groups)
    ref = names[0] if reference is None else _key(reference, keys)
    if ref not in groups:
        raise ValueError(f"reference row {reference!r} is not among the rows")
    ref_times = run_times(groups[ref])

    rows, pvalues = [], []
    for name in names:
        group = groups[name]
        status = group["status"].astype(str)
        times, grokked = run_times(group)
        km = km_median(times, grokked, confidence_level, method)
        p = None if name == ref else logrank_p(times, grokked, *ref_times)
        pvalues.append(None if name == ref else p)
        rows.append({**dict(zip(keys, name)),
                     "runs": len(group),
                     "reached": int((status == REACHED).sum()),
                     "censored": int((status == NOT_REACHED).sum()),
                     "diverged": int((status == "diverged").sum()),
                     "failed": int((status == "failed").sum()),
                     "unfinished": int((status == "unfinished").sum()),
                     "threshold_km_median": _none_to_nan(km.median),
                     "threshold_km_ci_low": _none_to_nan(km.ci_low),
                     "threshold_km_ci_high": _none_to_nan(km.ci_high),
                     "threshold_min": float(times[grokked].min()) if grokked.any() else math.nan,
                     "threshold_max": float(times[grokked].max()) if grokked.any() else math.nan,
                     "logrank_p": _none_to_nan(p)})
    for row, adjusted in zip(rows, holm(pvalues)):
        row["logrank_p_holm"] = _none_to_nan(adjusted)
    return pd.DataFrame(rows, columns=[*keys, *TABLE_COLUMNS])


def pairwise_logrank(trials: pd.DataFrame, keys: Sequence[str], rows: Sequence[Any]
                     ) -> pd.DataFrame:
    """Two-sided log-rank p for every pair of the chosen ``rows`` (key tuples, or scalars for a
    single key), Holm-corrected over the pairs with a defined p. Columns PAIR_COLUMNS; row_i and
    row_j are key tuples, in the order given (i before j); p is NaN where the test is undefined.
    """
    chosen = [_key(r, list(keys)) for r in rows]
    if len(set(chosen)) != len(chosen):
        raise ValueError("rows are repeated")
    return logrank_pairs(trials, keys, list(combinations(chosen, 2)))


def logrank_pairs(trials: pd.DataFrame, keys: Sequence[str],
                  pairs: Sequence[tuple[Any, Any]]) -> pd.DataFrame:
    """Two-sided log-rank p of each given pair of rows (key tuples), Holm-corrected over the
    pairs with a defined p; the columns and order as :func:`pairwise_logrank`."""
    keys = list(keys)
    groups = group_trials(trials, keys)
    pairs = [(_key(a, keys), _key(b, keys)) for a, b in pairs]
    absent = sorted({r for pair in pairs for r in pair if r not in groups}, key=str)
    if absent:
        raise ValueError(f"rows {absent} are not in the trials")
    ps = [logrank_p(*run_times(groups[a]), *run_times(groups[b])) for a, b in pairs]
    return pd.DataFrame([{"row_i": a, "row_j": b, "p": _none_to_nan(p),
                          "p_holm": _none_to_nan(h)}
                         for (a, b), p, h in zip(pairs, ps, holm(ps))],
                        columns=list(PAIR_COLUMNS))
