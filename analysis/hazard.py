"""A survival model of grok time: Cox proportional hazards on what the platform measures per run.

    python -m analysis.hazard --trials results/table1/trials.csv
    python -m analysis.hazard --experiment NAME [--tracking-uri URI] [--sweep NAME]
        [--formula "leakage + bijective_a + bijective_b"] [--only split=pairs ...]
        [--lookup censored|competing] [--plot forest.png]

**The data.** One line per expmod trial whose status is reached or not_reached (diverged,
failed and unfinished trials enter no estimate, as in the table). The *event* is grokking in the
sense of the trial's outcome ``grokked`` (``grokcore.signals``: the grok signal held the
threshold after a delay, and not by lookup), at the trial's threshold epoch. Every other trial
is right-censored at its ``epochs_run``: it had not grokked when it stopped. A *lookup* trial (test accuracy held by
test pairs sharing their class with a training pair, unseen-class accuracy did not) is
censored at its end by default (``--lookup censored``): the model is then the cause-specific
hazard of grokking. ``--lookup competing`` treats lookup as a competing event instead: a
lookup run cannot grok any more, so it stays in the risk set, censored at the end of the
longest follow-up (the Fine-Gray subdistribution hazard, as it is when the only censoring is
that end); its hazard ratios describe the share of runs that grok by a time.

**The covariates** (COVARIATES; one value per run, from its dataset statistics and settings):
``label_entropy`` (of the labels over all p^2 pairs, base p), ``label_chi2_pvalue`` (chi-square
test of label uniformity), ``bijective_a`` / ``bijective_b`` (x -> x^a, y -> y^b bijections of
Z_p, 0/1), ``leakage`` (share of test pairs whose class (x^a, y^b) has a training pair),
``unseen_share`` (share of test pairs of unseen classes: 1 - leakage, so use one of the two),
``orbit`` (the row (a', b') that the row is a renaming of, written ``a',b'``: rows of one
orbit are one learning problem; see ``orbit``), ``relative_exponent`` (where both x -> x^a and
y -> y^b are bijections: c = b * a^-1 modulo p - 1, so that the row is the row (1, c) with every
token z renamed z^a; 1 when a = b, missing otherwise, so give it with ``--only bijective_a=1
--only bijective_b=1``; categorical in a formula: ``C(relative_exponent)``), ``relative_order``
(the order of the permutation z -> z^c that turns the first operand's renaming into the
second's: the multiplicative order of c modulo p - 1; 1 when a = b, missing where c is),
``relative_cycles`` (the number of cycles of that permutation of Z_p: see ``relative_cycles``),
``same_exponent`` (a = b, 0/1),
``p``, ``frac_train``, ``dtype``, ``split`` (categorical: a level against the first), ``a``,
``b``. ``--formula`` picks them (a formulaic formula, as lifelines' ``CoxPHFitter`` takes it:
``a + b``, ``C(a)``, ``a:b``, ...); the default DEFAULT_FORMULA is the dataset statistics that
fit Table 1 without a separation (label entropy varies there only in (7, 7, 113), whose runs
never grok: its hazard ratio would run off to 0). ``--only KEY=VALUE`` keeps the trials with
that setting (e.g. one split).

**What it prints.** The hazard ratio of each covariate (per unit: 0 -> 1 for a flag or a share)
with its 95% interval and Wald p-value (``--per-sd``: a continuous covariate per standard
deviation over the runs instead), the concordance (Harrell's C: the share of comparable
pairs of runs whose predicted order of grokking is right), and the proportional-hazards check
(lifelines' test on scaled Schoenfeld residuals against the rank of time, per covariate: a small
p says that covariate's effect changes over time). Warnings lifelines raises while fitting (a
covariate that does not vary within events, a fit that did not converge: a separation) are
printed as notes. ``--plot`` draws the hazard ratios with their intervals (a forest plot).
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from analysis import stats
from analysis.runs import AnalysisError, fail
from analysis.renamings import OF_ROW, of_row
from analysis.source import add_source_arguments, load_trials, restrict
from analysis.trials import param_value
from grokcore.cli import OneLineErrorParser
from grokcore.signals import OUTCOMES

GROKKED, LOOKUP = OUTCOMES[0], OUTCOMES[2]  # the outcomes "grokked" and "lookup"
COVARIATES = ("label_entropy", "label_chi2_pvalue", "bijective_a", "bijective_b", "leakage",
              "unseen_share", "orbit", "relative_exponent", "relative_order", "relative_cycles",
              "same_exponent", "p", "frac_train", "dtype", "split", "a", "b")
DEFAULT_FORMULA = "leakage + bijective_a + bijective_b"
LOOKUP_CHOICES = ("censored", "competing")
FOREST_LIMIT = 1e4  # the forest plot's axis: 1e-4 .. 1e4


def hazard_frame(trials: pd.DataFrame, lookup: str = "censored") -> pd.DataFrame:
    """One line per estimable expmod trial: ``duration``, ``event`` (outcome grokked), the
    COVARIATES present in the trials (see the module doc for lookup), seed and data_seed."""
    if lookup not in LOOKUP_CHOICES:
        raise AnalysisError(f"--lookup {lookup}: choose {' or '.join(LOOKUP_CHOICES)}")
    of_task = trials[trials.task == "expmod"] if "task" in trials else trials.iloc[0:0]
    if of_task.empty:
        tasks = sorted(set(trials.get("task", pd.Series(dtype=str)).astype(str)))
        raise AnalysisError(f"analysis.hazard models expmod trials; these trials have {tasks}")
    runs = of_task[of_task.status.isin(stats.ESTIMABLE)].reset_index(drop=True)
    try:
        times, _ = stats.run_times(runs)
    except ValueError as err:
        raise AnalysisError(str(err)) from None
    outcome = runs["outcome"].astype(str) if "outcome" in runs else pd.Series("", index=runs.index)
    frame = pd.DataFrame({"event": (outcome == GROKKED).to_numpy()})
    epochs_run = pd.to_numeric(runs.epochs_run, errors="coerce").to_numpy(dtype=float)
    frame["duration"] = np.where(frame.event, times, epochs_run)
    if lookup == "competing":  # kept at risk to the end of the longest follow-up
        frame.loc[(outcome == LOOKUP).to_numpy(), "duration"] = np.nanmax(epochs_run)
    frame["lookup"] = (outcome == LOOKUP).to_numpy()
    frame["outcome"] = outcome.to_numpy()
    rows = ([tuple(int(param_value(v)) for v in abp) for abp in zip(runs.a, runs.b, runs.p)]
            if {"a", "b", "p"} <= set(runs) else None)
    for name in COVARIATES:
        if name == "unseen_share" and "leakage" in runs:
            frame[name] = 1.0 - pd.to_numeric(runs.leakage, errors="coerce").to_numpy()
        elif name in OF_ROW and rows is not None:
            frame[name] = of_row(name, rows)
        elif name in runs:
            values = runs[name].map(param_value)
            numeric = pd.to_numeric(values, errors="coerce")
            frame[name] = numeric.to_numpy() if numeric.notna().all() else values.astype(str)
    for name in ("seed", "data_seed"):  # not covariates: they match runs (outcomes --paired)
        if name in runs:
            frame[name] = pd.to_numeric(runs[name].map(param_value), errors="coerce").to_numpy()
    return frame


def check_formula(formula: str, frame: pd.DataFrame) -> list[str]:
    """The covariates ``formula`` reads; AnalysisError naming an unknown one."""
    from formulaic import Formula

    try:
        names = sorted(Formula(formula).required_variables)
    except Exception as err:  # formulaic raises several parse errors
        raise AnalysisError(f"--formula {formula!r} does not parse ({type(err).__name__}); "
                            f"write covariates joined by +, e.g. {DEFAULT_FORMULA!r}") from None
    unknown = [n for n in names if n not in COVARIATES]
    if unknown:
        raise AnalysisError(f"--formula: unknown covariate {', '.join(unknown)}; known: "
                            f"{', '.join(COVARIATES)}")
    absent = [n for n in names if n not in frame or frame[n].isna().any()]
    for name in ("relative_exponent", "relative_order", "relative_cycles"):
        if name in absent and name in frame:
            raise AnalysisError(f"--formula: {name} is defined where both exponents are "
                                "bijective only; add --only bijective_a=1 --only bijective_b=1")
    if absent:
        raise AnalysisError(f"--formula: the trials lack {', '.join(absent)} for some runs "
                            "(trials from before it was recorded); leave it out of --formula")
    return names


def per_sd(data: pd.DataFrame, names: Sequence[str]) -> dict[str, float]:
    """``--per-sd``: each numeric covariate of more than two values (a share, an entropy, p)
    centred and divided by its standard deviation over the runs, in place, so that its hazard
    ratio is per standard deviation rather than per unit (label entropy spans about 0.08 of a
    unit at p = 31: its ratio per unit runs to 1e64). Flags (0/1) keep their unit. Returns the
    standard deviations."""
    sds = {}
    for name in names:
        values = data[name]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 2 and values.std() > 0:
            sds[name] = float(values.std())
            data[name] = (values - values.mean()) / sds[name]
    return sds


def fit(frame: pd.DataFrame, formula: str, standardize: bool = False):
    """(the fitted lifelines CoxPHFitter, its data, the notes lifelines warned while fitting,
    the standard deviations of the covariates ``standardize`` (--per-sd) rescaled)."""
    from lifelines import CoxPHFitter

    names = check_formula(formula, frame)
    data = frame[["duration", "event", *names]].copy()
    # lifelines casts each column's median back to the column's dtype, which a nullable
    # integer refuses where the median falls between two values (22 and 31 in equal numbers);
    # check_formula has ruled out NA, so plain integers hold the same values and class names
    for name in names:
        if isinstance(data[name].dtype, pd.Int64Dtype):
            data[name] = data[name].astype("int64")
    sds = per_sd(data, names) if standardize else {}
    if int(data.event.sum()) < 2 or len(data) < len(names) + 2:
        raise AnalysisError(f"too few runs to fit: {len(data)} runs with {int(data.event.sum())} "
                            f"grok events for {len(names)} covariates; run more replicates or "
                            "give --formula fewer covariates")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = CoxPHFitter().fit(data, "duration", "event", formula=formula)
        except Exception as err:  # lifelines' ConvergenceError and linear-algebra failures
            raise AnalysisError(f"the Cox model does not fit ({type(err).__name__}: "
                                f"{str(err).splitlines()[0][:120]}); give --formula fewer or "
                                "other covariates") from None
    # lifelines' own warnings (a covariate that does not vary within events or non-events, a
    # fit that did not converge) are the reader's business: their first sentence, once each
    notes = list(dict.fromkeys(" ".join(str(w.message).split()).split(". ")[0]
                               for w in caught
                               if type(w.message).__module__.startswith("lifelines")))
    return model, data, notes, sds


def ph_check(model, data: pd.DataFrame) -> pd.DataFrame:
    """lifelines' proportional-hazards test per covariate (scaled Schoenfeld residuals
    against the rank of time): columns test_statistic, p."""
    from lifelines.statistics import proportional_hazard_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return proportional_hazard_test(model, data, time_transform="rank").summary[
            ["test_statistic", "p"]]


def _g(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.4g}"


def report(model, frame: pd.DataFrame, formula: str, lookup: str, notes: list[str],
           ph: pd.DataFrame, sds: dict[str, float] | None = None) -> str:
    """The printed result: counts, hazard ratios, concordance, the PH check, notes."""
    summary = model.summary
    w = max([18, *(len(str(name)) for name in summary.index)])  # the covariate column
    n_lookup = int(frame.lookup.sum())
    held = ("censored at their end" if lookup == "censored" or not n_lookup else
            f"a competing event: kept at risk to epoch {frame.duration[frame.lookup].max():g}")
    lines = [f"Cox proportional hazards of the grok epoch (lifelines CoxPHFitter): {formula}",
             f"runs: {len(frame)}; grok events (outcome grokked): {int(frame.event.sum())}; "
             f"not grokked: {int((~frame.event).sum())}, of which lookup {n_lookup} ({held})",
             *(["per standard deviation (--per-sd): "
                + ", ".join(f"{k} (sd {_g(v)})" for k, v in sds.items())] if sds else []),
             "",
             f"{'covariate':<{w}} {'hazard ratio':>12}  {'95% CI':<22} {'p':>9}"]
    for name, row in summary.iterrows():
        ci = f"[{_g(row['exp(coef) lower 95%'])}, {_g(row['exp(coef) upper 95%'])}]"
        lines.append(f"{name:<{w}} {_g(row['exp(coef)']):>12}  {ci:<22} {row['p']:>9.3g}")
    lines += ["", f"concordance (Harrell's C): {model.concordance_index_:.3f}", "",
              "proportional hazards (scaled Schoenfeld residuals against the rank of time; "
              "a small p: the effect changes over time):",
              f"{'covariate':<{w}} {'chi2':>8} {'p':>9}"]
    for name, row in ph.iterrows():
        lines.append(f"{str(name):<{w}} {row['test_statistic']:>8.3f} {row['p']:>9.3g}")
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines) + "\n"


def plot_forest(model, path: Path) -> Path:
    """The hazard ratios with their 95% intervals, one line per covariate (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = model.summary
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(summary) + 1.5))
    rows = np.arange(len(summary))[::-1]
    ratio, low, high = (summary[c].to_numpy(dtype=float) for c in
                        ("exp(coef)", "exp(coef) lower 95%", "exp(coef) upper 95%"))
    # an interval past FOREST_LIMIT (a covariate that nearly separates the runs, or one whose
    # unit is too coarse: see --per-sd) is cut there and marked with an arrow, so that the
    # axis stays readable and finite
    def clip(v):
        return np.clip(np.nan_to_num(v, nan=1.0), 1 / FOREST_LIMIT, FOREST_LIMIT)

    ax.hlines(rows, clip(low), clip(high), color="k")
    inside = (ratio > 1 / FOREST_LIMIT) & (ratio < FOREST_LIMIT)
    ax.plot(ratio[inside], rows[inside], "s", color="k")
    for row, lo, hi in zip(rows, low, high):
        if not lo > 1 / FOREST_LIMIT:
            ax.plot(1 / FOREST_LIMIT, row, "<", color="k")
        if not hi < FOREST_LIMIT:
            ax.plot(FOREST_LIMIT, row, ">", color="k")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")  # ratios: 1/10 and 10 are as far from 1
    ax.set_yticks(rows, [str(n) for n in summary.index])
    ax.set_xlabel(f"hazard ratio, 95% CI (an arrow: beyond {FOREST_LIMIT:g} or "
                  f"1/{FOREST_LIMIT:g})")
    ax.set_title("hazard ratio of grokking")
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as err:
        raise AnalysisError(f"cannot write {path}: {err.strerror}") from None
    finally:
        plt.close(fig)
    return path


def plot_km_by(frame: pd.DataFrame, covariates: str, path: str) -> Path:
    """``--plot-km-by``: the KM curves of the model's runs by class of ``covariates``."""
    from analysis.figures_km import plot_km_classes

    names = [n.strip() for n in covariates.split(",") if n.strip()]
    unknown = [n for n in names if n not in frame]
    if not names or unknown:
        raise AnalysisError(f"--plot-km-by: {', '.join(unknown) or 'no covariate'} is not a "
                            f"covariate of these runs; choose from {', '.join(COVARIATES)}")
    return plot_km_classes(frame, names, Path(path))


def build_parser():
    parser = OneLineErrorParser(
        prog="python -m analysis.hazard",
        description="Cox proportional-hazards model of the grok epoch (outcome grokked) on "
                    "per-run covariates: hazard ratios with 95% intervals and p-values, the "
                    "concordance, the proportional-hazards check. Covariates: "
                    + ", ".join(COVARIATES) + ".")
    add_source_arguments(parser)
    parser.add_argument("--formula", default=DEFAULT_FORMULA,
                        help=f"the covariates, as a formula (default: {DEFAULT_FORMULA!r})")
    parser.add_argument("--where", action="append", default=[], metavar="COVARIATE=VALUE",
                        help="keep only the runs whose covariate (one of those above, as "
                             "computed here) has this value or one of several, e.g. "
                             "same_exponent=0 or relative_order=2,4 (repeatable)")
    parser.add_argument("--lookup", choices=LOOKUP_CHOICES, default="censored",
                        help="lookup runs: censored at their end (default; the cause-specific "
                             "hazard of grokking), or a competing event (kept at risk to the "
                             "end of follow-up: the subdistribution hazard)")
    parser.add_argument("--per-sd", action="store_true",
                        help="hazard ratios of the continuous covariates per standard deviation "
                             "over the runs (each centred and scaled), not per unit; flags keep "
                             "0 -> 1")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE",
                        help="forest plot of the hazard ratios (PNG)")
    parser.add_argument("--plot-km-by", nargs=2, default=None, metavar=("COVARIATES", "FILE"),
                        help="Kaplan-Meier curves of the same runs and events, one per class of "
                             "the comma-separated COVARIATES (e.g. bijective_a,bijective_b; a "
                             "continuous one as >0 or =0), drawn to FILE (PNG)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        trials, _ = load_trials(args)
        frame = restrict(hazard_frame(trials, args.lookup), args.where, "--where",
                         "a covariate")
        if args.plot_km_by:
            plot_km_by(frame, *args.plot_km_by)
        model, data, notes, sds = fit(frame, args.formula, args.per_sd)
        # an interval that overflows is printed "-" (the report's point); numpy's warning about
        # it would only add a line naming a file path of this machine
        with np.errstate(over="ignore", invalid="ignore"):
            text = report(model, frame, args.formula, args.lookup, notes, ph_check(model, data),
                          sds)
            if args.plot:
                plot_forest(model, args.plot)
    except AnalysisError as err:
        return fail(str(err))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
