"""Replicate planning: how many runs a row needs for the table's tests to find a difference.

    python -m analysis.power --trials results/table1/trials.csv
    python -m analysis.power --experiment NAME [--tracking-uri URI] [--sweep NAME]
        [--ratio 2] [--power 0.8] [--alpha 0.05] [--tests M] [--method lognormal|resample]
        [--test logrank|t] [--sims 2000] [--max-n 40] [--seed 0] [--include-lookup]

**The spread.** Per row: the standard deviation of log(threshold epoch) over its runs
(``analysis.lognormal``); pooled over rows, sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)). A row
enters when at least two of its runs reached the threshold and none is censored (a censored
run's time is only bounded: the spread is not computable). Runs whose outcome is lookup (test
accuracy held by pairs sharing a training pair's class, not by generalization) are left out by
default, as their crossing time is not a time to generalize (``--include-lookup`` keeps them).

**The question.** Two rows whose median threshold epochs differ by a factor ``--ratio`` R (default
2), each with the pooled spread: with n runs a row, how often does the table's test, the
two-sided log-rank test (``--test t``: Student's t on log epochs), give p below alpha? At the
plain ``--alpha`` (one planned comparison) and at alpha / M, the level Holm's correction asks
of the smallest of M p-values (M = ``--tests``, default the table's: one test per row against
the reference row, rows - 1). The replicates needed are the smallest n whose power reaches
``--power`` (0.8); the current table's power is the power at its replicates (the median runs
of a row).

**The simulation** (its model is printed): ``lognormal`` (default) draws log epochs from a
normal with the pooled sd; ``resample`` draws them from the rows' own log epochs centred on
their row mean (scaled by sqrt(n_i / (n_i - 1)) so that their spread is the pooled one), with
replacement. Group b is group a shifted by log R. ``--sims`` pairs of rows per n, from a
seeded generator: the same seed gives the same answer. Censoring is not simulated (every
simulated run reaches the threshold): with runs stopped at a budget well past the medians, as in
Table 1, it changes little; closer to the budget it lowers the power.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import stats
from analysis.logrank import logrank_parts
from analysis.lognormal import LogSpread, log_spread, pooled_sd
from analysis.runs import AnalysisError, fail
from analysis.source import add_source_arguments, load_trials
from analysis.trials import config_keys
from grokcore.cli import OneLineErrorParser
from grokcore.signals import OUTCOMES

LOOKUP = OUTCOMES[2]
METHODS = ("lognormal", "resample")
TESTS = ("logrank", "t")


@dataclass(frozen=True)
class RowSpread:
    key: tuple
    runs: int  # estimable runs of the row
    spread: LogSpread | None  # None: not computable (reason)
    reason: str


def row_spreads(trials: pd.DataFrame, include_lookup: bool = False) -> tuple[list[str],
                                                                             list[RowSpread]]:
    """(the key columns, each row's spread of log threshold epoch); see the module doc."""
    tasks = sorted(set(trials.task.astype(str)))
    if len(tasks) != 1:
        raise AnalysisError(f"analysis.power plans the rows of one task; these trials have "
                            f"{tasks}")
    keys = list(config_keys(tasks[0]))
    try:
        groups = stats.group_trials(trials, keys)
    except ValueError as err:
        raise AnalysisError(str(err)) from None
    rows = []
    for key, group in groups.items():
        kept = group if include_lookup or "outcome" not in group else \
            group[group.outcome.astype(str) != LOOKUP]
        times, reached = stats.run_times(kept)
        if (~reached).any():
            rows.append(RowSpread(key, len(times), None, f"{int((~reached).sum())} censored"))
        elif len(times) == 0 and len(kept) < len(group):
            rows.append(RowSpread(key, 0, None, "lookup"))
        elif len(times) < 2:
            rows.append(RowSpread(key, len(times), None, f"{len(times)} reached"))
        else:
            rows.append(RowSpread(key, len(times), log_spread(times), ""))
    return keys, rows


def simulate_p(n: int, sd: float, ratio: float, sims: int, rng: np.random.Generator,
               method: str = "lognormal", residuals: np.ndarray | None = None,
               test: str = "logrank") -> np.ndarray:
    """Two-sided p-values of ``sims`` simulated pairs of rows of ``n`` runs each, the second
    row's median ``ratio`` times the first's (log epochs: see the module doc)."""
    if method == "lognormal":
        y = rng.normal(0.0, sd, size=(sims, 2, n))
    else:
        y = rng.choice(residuals, size=(sims, 2, n), replace=True)
    y[:, 1, :] += math.log(ratio)
    if test == "t":
        return sps.ttest_ind(y[:, 0, :], y[:, 1, :], axis=-1).pvalue
    times = y.reshape(sims, 2 * n)
    in_a = np.arange(2 * n) < n
    o_minus_e, var = logrank_parts(times, np.ones_like(times, dtype=bool),
                                   np.broadcast_to(in_a, times.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, o_minus_e / np.sqrt(var), 0.0)
    return 2 * sps.norm.sf(np.abs(z))


def power_curve(sd: float, ratio: float, alphas: Sequence[float], target: float, max_n: int,
                sims: int, seed: int = 0, method: str = "lognormal",
                residuals: np.ndarray | None = None, test: str = "logrank",
                also: Sequence[int] = ()) -> dict[int, list[float]]:
    """Power at each alpha for n = 2, 3, ... until every alpha reaches ``target`` (or
    ``max_n``), and at the sizes in ``also``: {n: [power at each alpha]}. Each n has its own
    stream of the seeded generator, so a power does not depend on which other n ran."""
    curve: dict[int, list[float]] = {}
    for n in sorted(set(range(2, max_n + 1)) | set(also)):
        if n > max(also, default=0) and curve and all(
                any(curve[m][i] >= target for m in curve) for i in range(len(alphas))):
            break
        rng = np.random.default_rng([seed, n])
        p = simulate_p(n, sd, ratio, sims, rng, method, residuals, test)
        curve[n] = [float(np.mean(p < a)) for a in alphas]
    return curve


def needed(curve: dict[int, list[float]], i: int, target: float) -> int | None:
    """The smallest n whose power at alpha i reaches ``target`` (None: not within the curve)."""
    return next((n for n in sorted(curve) if curve[n][i] >= target), None)


def residuals_of(trials: pd.DataFrame, rows: list[RowSpread], keys: list[str],
                 include_lookup: bool) -> np.ndarray:
    """The rows' log epochs centred on their row mean, scaled to unbiased spread."""
    groups = stats.group_trials(trials, keys)
    out = []
    for row in rows:
        if row.spread is None:
            continue
        group = groups[row.key]
        if not include_lookup and "outcome" in group:
            group = group[group.outcome.astype(str) != LOOKUP]
        y = np.log(stats.run_times(group)[0])
        out.append((y - y.mean()) * math.sqrt(len(y) / (len(y) - 1)))
    return np.concatenate(out)


def _key_text(keys: list[str], key: tuple, shown: list[str]) -> str:
    return " ".join(f"{k}={key[keys.index(k)]}" for k in shown)


def spread_lines(keys: list[str], rows: list[RowSpread], sd: float | None, df: int,
                 include_lookup: bool) -> list[str]:
    shown = [k for i, k in enumerate(keys[1:], 1) if len({r.key[i] for r in rows}) > 1] or \
        keys[1:2]
    lines = ["spread of log(threshold epoch) per row (runs that reached the threshold; a row with "
             "a censored run has none):"]
    for r in rows:
        value = f"sd {r.spread.sd:.3f} over {r.spread.n} runs" if r.spread else \
            f"- ({r.reason})"
        lines.append(f"  {_key_text(keys, r.key, shown)}: {value}")
    used = sum(r.spread is not None for r in rows)
    lookup = "lookup runs kept" if include_lookup else "lookup runs left out"
    lines.append(f"pooled within-row sd: {sd:.3f} ({used} rows, {df} degrees of freedom; "
                 f"{lookup})")
    return lines


def plan(args, trials: pd.DataFrame) -> str:
    """The printed plan: spreads, replicates needed, the current table's power."""
    keys, rows = row_spreads(trials, args.include_lookup)
    sd, df = pooled_sd(r.spread for r in rows if r.spread)
    if sd is None or sd == 0:
        raise AnalysisError("too few runs to plan: no row has two runs that reached the "
                            "threshold at distinct epochs and none censored; run more replicates")
    tests = args.tests if args.tests is not None else len(rows) - 1
    if tests < 1:
        raise AnalysisError("one row makes no test: give --tests M, the number of tests the "
                            "table will correct over")
    alphas = [args.alpha, args.alpha / tests]
    current = int(np.median([r.runs for r in rows if r.runs] or [0]))
    residuals = residuals_of(trials, rows, keys, args.include_lookup) \
        if args.method == "resample" else None
    curve = power_curve(sd, args.ratio, alphas, args.power, args.max_n, args.sims, args.seed,
                        args.method, residuals, args.test,
                        also=sorted({current, *args.at} - {0, 1}))
    model = (f"a log-normal with sd {sd:.3f} (fitted: the pooled sd)" if args.method ==
             "lognormal" else f"resampling the {residuals.size} centred log epochs of the rows")
    test = "log-rank test" if args.test == "logrank" else "t test on log epochs"
    lines = spread_lines(keys, rows, sd, df, args.include_lookup) + [
        "",
        f"replicates a row needs to detect a median ratio of {args.ratio:g} with power "
        f"{args.power:g} (two rows, two-sided {test}),",
        f"simulated from {model}, {args.sims} pairs of rows per n, seed {args.seed} (Monte "
        f"Carlo standard error of a power about {math.sqrt(0.16 / args.sims):.2f}):"]
    names = [f"alpha {args.alpha:g} (one test)",
             f"alpha {args.alpha:g}/{tests} = {alphas[1]:.3g} (Holm over {tests} tests)"]
    for i, name in enumerate(names):
        n = needed(curve, i, args.power)
        found = f"n = {n} (power {curve[n][i]:.2f})" if n else f"more than {args.max_n}"
        lines.append(f"  {name}: {found}")
    for n in sorted({current, *args.at} - {0, 1}):
        which = "the current table" if n == current else "a table"
        lines += ["" if n == min({current, *args.at} - {0, 1}) else None,
                  f"power of {which} with {n} runs a row, for a ratio of {args.ratio:g}: "
                  f"{curve[n][0]:.2f} at alpha {args.alpha:g}, {curve[n][1]:.2f} at "
                  f"{alphas[1]:.3g}"]
    return "\n".join(line for line in lines if line is not None) + "\n"


def build_parser():
    parser = OneLineErrorParser(
        prog="python -m analysis.power",
        description="Replicate planning from a sweep's trials: the spread of log threshold epoch "
                    "per row and pooled; by simulation, the replicates a row needs to detect a "
                    "median ratio with the wanted power, at the plain and the Holm-corrected "
                    "alpha; and the power the current table has.")
    add_source_arguments(parser)
    parser.add_argument("--ratio", type=_above_one, default=2.0,
                        help="the ratio of two rows' median threshold epochs to detect (default 2)")
    parser.add_argument("--power", type=_share, default=0.8, help="wanted power (default 0.8)")
    parser.add_argument("--alpha", type=_share, default=0.05, help="test level (default 0.05)")
    parser.add_argument("--tests", type=int, default=None, metavar="M",
                        help="tests the table corrects over with Holm (default: its rows - 1)")
    parser.add_argument("--method", choices=METHODS, default="lognormal",
                        help="simulate from a fitted log-normal (default) or resample the rows' "
                             "centred log epochs")
    parser.add_argument("--test", choices=TESTS, default="logrank",
                        help="the test simulated: log-rank (the table's; default) or t on log "
                             "epochs")
    parser.add_argument("--sims", type=int, default=2000, help="simulated pairs per n (2000)")
    parser.add_argument("--max-n", type=int, default=40, help="largest n tried (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation (0)")
    parser.add_argument("--at", type=int, action="append", default=[], metavar="N",
                        help="also print the power with N runs a row (repeatable)")
    parser.add_argument("--include-lookup", action="store_true",
                        help="keep runs whose outcome is lookup in the spread")
    return parser


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _share(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _above_one(text: str) -> float:
    value = _number(text)
    if not value > 1:
        raise argparse.ArgumentTypeError(f"give a ratio above 1 (the slower row's median over "
                                         f"the faster's), not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.sims < 100 or args.max_n < 2:
            raise AnalysisError("--sims must be at least 100 and --max-n at least 2")
        text = plan(args, load_trials(args)[0])
    except AnalysisError as err:
        return fail(str(err))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
