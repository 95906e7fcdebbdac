"""Threshold epochs on the log scale: a row's spread, and the prediction interval for one new run.

Threshold epochs (``analysis.stats``: the epoch from which test accuracy held the threshold) are
positive and skewed, and their ratios are what one compares (twice as slow), so these statistics
are taken on log(threshold epoch). They need the row's times themselves: a row with a censored
run (one that had not reached the threshold when it stopped) only bounds that run's time from
below, so these statistics are *not computable* for it and say so, rather than drop the run
(which would bias the row towards fast runs). The censored-data estimates of a row are
``analysis.stats`` (Kaplan-Meier, log-rank).

**Prediction interval for one new run** (the classic t-based one): with n runs of a row, mean m
and standard deviation s (n - 1 degrees of freedom) of their log threshold epochs, one new run's log
threshold epoch lies in m +- t(0.975, n - 1) s sqrt(1 + 1/n) with probability 0.95 when the row's
log times are normal; the interval is given back on the epoch scale. A single published run
(the seed paper's figure) is tested as such a new run: T = (log x - m) / (s sqrt(1 + 1/n)) has
Student's t with n - 1 degrees of freedom, two-sided p = 2 P(t > |T|). The table corrects these
p-values over its rows with Holm (``analysis.stats.holm``).

Public API::

    log_spread(times) -> LogSpread
    pooled_sd(spreads) -> (sd, degrees of freedom)
    new_run_test(times, grokked, value, level=0.95) -> NewRunTest
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class LogSpread:
    """n runs, mean and standard deviation (n - 1 df; None when n < 2) of log(threshold epoch)."""

    n: int
    mean: float | None
    sd: float | None


@dataclass(frozen=True)
class NewRunTest:
    """One value tested as a new run of a row.

    low, high: the prediction interval on the epoch scale (None when not computable); p: the
    two-sided p of the value as a new run (None when not computable or no value); side:
    "above", "below" or "inside" the interval; reason: why it is not computable ("" when it is).
    """

    low: float | None
    high: float | None
    p: float | None
    side: str
    reason: str


def log_spread(times: Any) -> LogSpread:
    """Spread of the log of positive times (all observed: no censored run among them)."""
    y = np.log(np.asarray(times, dtype=float).ravel())
    if y.size == 0:
        return LogSpread(0, None, None)
    sd = float(np.std(y, ddof=1)) if y.size > 1 else None
    return LogSpread(int(y.size), float(y.mean()), sd)


def pooled_sd(spreads: Iterable[LogSpread]) -> tuple[float | None, int]:
    """The pooled within-row standard deviation sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over
    the rows with a defined sd, and its degrees of freedom sum (n_i - 1)."""
    df = 0
    ss = 0.0
    for s in spreads:
        if s.sd is not None:
            df += s.n - 1
            ss += (s.n - 1) * s.sd ** 2
    return (math.sqrt(ss / df) if df else None), df


def _not_computable(reason: str) -> NewRunTest:
    return NewRunTest(None, None, None, "", reason)


def new_run_test(times: Any, grokked: Any, value: float | None,
                 level: float = 0.95) -> NewRunTest:
    """The ``level`` prediction interval of one new run's threshold epoch from a row's runs
    (``times`` with ``grokked``; see the module doc), and ``value`` tested as that new run.
    Not computable with a censored run, fewer than two runs, or no spread (all runs at one
    epoch)."""
    t = np.asarray(times, dtype=float).ravel()
    g = np.asarray(grokked, dtype=bool).ravel()
    if (~g).any():
        return _not_computable(f"{int((~g).sum())} censored run(s)")
    spread = log_spread(t)
    if spread.n < 2:
        return _not_computable(f"{spread.n} run(s)")
    if spread.sd == 0:
        return _not_computable("no spread")
    scale = spread.sd * math.sqrt(1 + 1 / spread.n)
    half = float(stats.t.ppf(0.5 + level / 2, spread.n - 1)) * scale
    low, high = math.exp(spread.mean - half), math.exp(spread.mean + half)
    if value is None:
        return NewRunTest(low, high, None, "", "")
    score = (math.log(value) - spread.mean) / scale
    p = float(2 * stats.t.sf(abs(score), spread.n - 1))
    side = "above" if value > high else "below" if value < low else "inside"
    return NewRunTest(low, high, p, side, "")
