"""The log-rank statistic in parts, for what scipy's ``logrank`` does not do: strata and batches.

``scipy.stats.logrank`` (``analysis.stats.logrank_p``) returns the standardized statistic of one
two-group comparison; a *stratified* test needs each stratum's observed-minus-expected events and
their variance before they are summed, and the replicate planning (``analysis.power``) needs the
statistic of thousands of simulated samples at once. Both are the same sums, computed here once:

    at each distinct event time t:  n at risk (n_a of them in group a), d events (d_a in a)
    O_a - E_a = sum_t (d_a - n_a d / n)
    V         = sum_t n_a (n - n_a) d (n - d) / (n^2 (n - 1))          (hypergeometric variance)

The stratified log-rank test sums both over strata (each stratum has its own risk sets) and
refers Z = sum(O - E) / sqrt(sum V) to the standard normal: it is the score test of a Cox model
with one binary covariate (group a) stratified by the stratum. With one stratum it is the
ordinary log-rank test, equal to scipy's (a test checks it).

Public API::

    logrank_parts(times, events, in_a) -> (o_minus_e, variance)   arrays over a leading batch axis
    stratified_logrank(strata) -> StratifiedLogrank
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class StratifiedLogrank:
    """A stratified log-rank test of group a against group b.

    strata: the strata that entered (each with runs of both groups); observed / expected: group
    a's events and their expectation under no difference, summed over strata; variance: the
    summed variance of observed - expected; z: (observed - expected) / sqrt(variance), positive
    when group a's events come sooner than no difference would have them; p: two-sided. z and p
    are None when the variance is zero (no event while both groups were at risk).
    """

    strata: int
    observed: float
    expected: float
    variance: float
    z: float | None
    p: float | None


def logrank_parts(times: Any, events: Any, in_a: Any) -> tuple[np.ndarray, np.ndarray]:
    """O_a - E_a and its variance for each sample of a batch.

    ``times``, ``events`` (bool: the run's event happened at its time, else it is censored
    there) and ``in_a`` (bool: the run is in group a) have the shape (..., runs); the results
    have the leading shape. Ties are handled as above: each of the d runs with an event at time
    t carries 1/d of that time's terms, so a sum over runs is a sum over distinct times.
    """
    t = np.asarray(times, dtype=float)
    e = np.asarray(events, dtype=bool)
    a = np.asarray(in_a, dtype=bool)
    if not (t.shape == e.shape == a.shape):
        raise ValueError(f"times, events and in_a differ in shape ({t.shape}, {e.shape}, "
                         f"{a.shape})")
    at_risk = t[..., None, :] >= t[..., :, None]  # [i, j]: run j is at risk at run i's time
    n = at_risk.sum(-1).astype(float)
    n_a = (at_risk & a[..., None, :]).sum(-1).astype(float)
    d = ((t[..., None, :] == t[..., :, None]) & e[..., None, :]).sum(-1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(e, n_a / n, 0.0)
        var = np.where(e & (n > 1), n_a * (n - n_a) * (n - d) / (n * n * (n - 1)), 0.0)
    o_minus_e = (e & a).sum(-1) - expected.sum(-1)
    return o_minus_e, var.sum(-1)


def _two_sided(o_minus_e: float, variance: float) -> tuple[float | None, float | None]:
    if not variance > 0:
        return None, None
    z = o_minus_e / math.sqrt(variance)
    return z, float(2 * stats.norm.sf(abs(z)))


def stratified_logrank(strata: Iterable[tuple[Any, Any, Any, Any]]) -> StratifiedLogrank:
    """The log-rank test of group a against group b stratified by ``strata``: each item is
    ``(times_a, events_a, times_b, events_b)`` of one stratum (e.g. one table row run under
    two values of a setting). Strata without runs in both groups add nothing and are not
    counted."""
    observed = expected = variance = 0.0
    used = 0
    for times_a, events_a, times_b, events_b in strata:
        ta, ea = np.asarray(times_a, float).ravel(), np.asarray(events_a, bool).ravel()
        tb, eb = np.asarray(times_b, float).ravel(), np.asarray(events_b, bool).ravel()
        if ta.size == 0 or tb.size == 0:
            continue
        o_e, v = logrank_parts(np.concatenate([ta, tb]), np.concatenate([ea, eb]),
                               np.arange(ta.size + tb.size) < ta.size)
        observed += float(ea.sum())
        expected += float(ea.sum()) - float(o_e)
        variance += float(v)
        used += 1
    z, p = _two_sided(observed - expected, variance)
    return StratifiedLogrank(used, observed, expected, variance, z, p)
