"""How runs ended, counted by covariate class: grokked, reached the threshold with no delay, by
lookup, or did not generalize; between two values of one setting on the same runs
(``--compare split``) or of a covariate of the rows (``--between relative_order``), Fisher's
exact test of grokked against not, class by class; and whether the rows within each class end
alike (``--alike a,b``, a permutation test).

    python -m analysis.outcomes --trials results/phase/trials.csv --only dtype=float32 \\
        --only frac_train=0.5 --by bijective_a,bijective_b,same_exponent --compare split

**Why counts.** A log-rank test of the time to the threshold (``analysis.grok_table --compare``)
counts a lookup run as reaching it; under the pairs split most runs of non-bijective exponents do
so by lookup, under the classes split none can, so a comparison of the splits by time mostly
measures lookup. Counting outcomes keeps them apart: grokking (the outcome ``grokked``) is the
event here, as in ``analysis.hazard``.

**The runs.** Those ``analysis.hazard`` models: expmod trials whose status is reached or
not_reached (diverged, failed and unfinished trials are counted nowhere). ``--by`` names the
classes, from ``analysis.hazard.COVARIATES`` (a value missing for a class, such as
``relative_order`` where an exponent is not bijective, prints as ``-``). With ``--compare FIELD``
only the runs whose row (the other settings that name a table row: a, b, p, split, dtype,
frac_train), seed and data seed ended under every value of FIELD are counted, so that the values
are compared on the same runs but for FIELD.

**The test of --compare.** Per class, with exactly two values of FIELD: Fisher's exact test
(two-sided, ``scipy.stats.fisher_exact``) of grokked against not grokked; Holm over the classes.
It takes runs as independent; runs of one data seed share a training set across rows, and
replicates of a row share its task, so read a small p as a lead, not a finding.

**--between COVARIATE**: the same test between two values of a covariate that rows differ by
(``relative_order``, ``same_exponent``), where no run has a twin under the other value: every
run counts, and a class of ``--by`` is tested where its runs hold exactly two values of
COVARIATE. Runs of one epoch budget end at one epoch, so "grokked by the end" is a fair
endpoint, and unlike a Cox model's hazard ratio it does not assume the hazards proportional.

**--paired**, with ``--compare`` or ``--between``: the runs of the two values matched by seed
and data seed (and, under ``--compare``, by the rest of their row) within each class, as a
design that gives both values the same seeds makes them; the exact McNemar test (two-sided,
``scipy.stats.binomtest`` of the discordant pairs at 1/2) asks whether "only the first value's
run grokked" is as common as "only the second's". Where the runs of one seed hang together
(one data seed gives every row at a prime the same training pairs) this is the test that takes
that into account; runs without a partner are left out and counted. A value with two runs of
one seed in a class (two rows of one relative order) cannot be paired: name one row a value
with ``--only``.

**Rows alike** (``--alike FIELDS``, e.g. ``--by p,orbit,a,b --alike a,b``): do the rows named
by FIELDS end alike within each class of the other ``--by`` covariates? Rows of one orbit
(``analysis.renamings.orbit``) are one task renamed, so they should, up to chance; the test sums the
chi-square statistics of each class's rows x outcomes table and counts how often 9,999 seeded
shuffles of the outcomes among each class's runs give a sum as large (both margins of every
table stay fixed). It takes the runs of a class as exchangeable; with 3 runs a row it sees only
large differences.
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

import pandas as pd

from analysis.hazard import COVARIATES, hazard_frame
from analysis.runs import AnalysisError, fail
from analysis.source import add_source_arguments, load_trials
from analysis.stats import ESTIMABLE, holm
from analysis.text_table import format_table
from analysis.trials import config_keys
from grokcore.cli import OneLineErrorParser
from grokcore.signals import OUTCOMES

COUNTED = ("grokked", "no_delay", "lookup", "not_generalized")  # the estimable runs' outcomes
ROW_FIELDS = tuple(k for k in config_keys("expmod") if k != "task")  # what names an expmod row
assert set(COUNTED) <= set(OUTCOMES)


def class_names(text: str, option: str = "--by") -> list[str]:
    """``--by`` (or ``--alike``): the comma-separated covariates, each one of COVARIATES."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in COVARIATES]
    if not names or unknown:
        raise AnalysisError(f"{option} {text}: {', '.join(unknown) or 'no covariate'} is not a "
                            f"covariate; choose from {', '.join(COVARIATES)}")
    return names


def between(text: str) -> str:
    """``--between``: one covariate."""
    names = class_names(text, "--between")
    if len(names) != 1:
        raise AnalysisError(f"--between {text}: name one covariate, e.g. --between "
                            "relative_order")
    return names[0]


def matched(trials: pd.DataFrame, field: str) -> pd.DataFrame:
    """The estimable runs (status reached or not_reached) whose row (ROW_FIELDS but ``field``),
    seed and data seed ended estimable under every value of ``field`` among them: each value
    counts the same runs but for ``field``."""
    if field not in ROW_FIELDS or field not in trials:
        raise AnalysisError(f"--compare {field}: choose a setting that names rows "
                            f"({', '.join(f for f in ROW_FIELDS if f in trials)})")
    runs = trials[trials.status.isin(ESTIMABLE)]
    values = runs[field].unique()
    if len(values) < 2:
        raise AnalysisError(f"--compare {field}: the runs that ended have one value of it "
                            f"({values[0] if len(values) else 'none'}); nothing to compare")
    keys = [f for f in (*ROW_FIELDS, "seed", "data_seed") if f != field and f in runs]
    every = runs.groupby(keys)[field].transform("nunique") == len(values)
    if not every.any():
        raise AnalysisError(f"--compare {field}: no run ended under every value of it")
    return runs[every].reset_index(drop=True)


def count(frame: pd.DataFrame, by: Sequence[str], field: str | None) -> pd.DataFrame:
    """One line per class (and value of ``field``): runs and the number of each outcome in
    COUNTED; where a class holds two values of ``field``, Fisher's p and Holm's adjustment
    (over those classes) on the class's first line."""
    keys = [*by, *([field] if field else [])]
    data = frame.assign(**{k: frame[k].astype(object).where(frame[k].notna(), "-")
                           for k in keys})
    table = (pd.crosstab([data[k] for k in keys], data.outcome)
             .reindex(columns=list(COUNTED), fill_value=0))
    table.insert(0, "runs", table.sum(axis=1))
    table = table.reset_index()
    table.columns.name = None
    if field:
        groups = table.groupby(by, sort=False) if by else [((), table)]
        fisher = [_fisher(group) for _, group in groups]
        if not all(math.isnan(p) for p in fisher):
            # each class's first line, in the groups' order
            firsts = ~table.duplicated(by) if by else table.index == 0
            table.loc[firsts, "fisher_p"] = fisher
            table.loc[firsts, "holm"] = holm(fisher)
    return table


def paired(frame: pd.DataFrame, by: Sequence[str], field: str, compare: bool) -> pd.DataFrame:
    """``--paired``: per class of ``by`` that holds two values of ``field``, the runs matched
    by seed, data seed and (``compare``) the other ROW_FIELDS; the pairs, how many grokked under
    both, only the first value, only the second, neither, the runs left unpaired, and the exact
    McNemar p (Holm over the classes)."""
    match = ["seed", "data_seed", *([f for f in ROW_FIELDS if f != field and f in frame]
                                    if compare else [])]
    missing = [k for k in match if k not in frame or frame[k].isna().any()]
    if missing:
        raise AnalysisError(f"--paired: the trials lack {', '.join(missing)} for some runs, "
                            "so runs cannot be matched; leave out --paired")
    lines = []
    for key, group in (frame.groupby(list(by), dropna=False) if by else [((), frame)]):
        values = sorted(group[field].dropna().unique(), key=_in_order)
        if len(values) == 2:
            key = key if isinstance(key, tuple) else (key,)
            where = f" in class {', '.join(map(str, key))}" if by else ""
            lines.append([*key, f"{values[0]} | {values[1]}",
                          *_pair_counts(group, match, field, values, where)])
    if not lines:
        raise AnalysisError(f"--paired: no class of --by {','.join(by) or '-'} holds two values "
                            f"of {field}; nothing to pair")
    table = pd.DataFrame(lines, columns=[*by, "values", "pairs", "both", "only_first",
                                         "only_second", "neither", "unpaired", "mcnemar_p"])
    table["holm"] = holm(list(table.mcnemar_p))
    return table


def _pair_counts(group: pd.DataFrame, match: list[str], field: str, values: list,
                 where: str) -> list:
    """One class's pairs (runs equal on ``match``, one under each of the two ``values``):
    [pairs, both grokked, only the first, only the second, neither, unpaired runs, McNemar p]."""
    from scipy.stats import binomtest

    twins = group.groupby([*match, field]).size()
    if (twins > 1).any():
        (*_, value), n = twins.idxmax(), int(twins.max())
        raise AnalysisError(f"--paired: {n} runs of one seed and data seed have {field} = "
                            f"{value}{where} (several rows); keep one row a value with --only, "
                            "or leave out --paired")
    grokked = (group.set_index([*match, field]).outcome == "grokked").unstack(field)
    pairs = grokked.dropna().astype(bool)
    first, second = pairs[values[0]], pairs[values[1]]
    only = [int((first & ~second).sum()), int((~first & second).sum())]
    # the exact McNemar test: the discordant pairs split as a fair coin would split them
    p = float(binomtest(only[0], sum(only), 0.5).pvalue) if sum(only) else 1.0
    return [len(pairs), int((first & second).sum()), *only, int((~first & ~second).sum()),
            len(group) - 2 * len(pairs), p]


def render_paired(table: pd.DataFrame, by: Sequence[str], field: str, compare: bool) -> str:
    matched_by = "seed, data seed" + (" and the rest of the row" if compare else "")
    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    return "\n".join([
        f"\nPaired: the runs of the two values of {field} matched by {matched_by}", "",
        format_table(list(table.columns), cells, align="l" * (len(by) + 1) + "r", strip=True),
        "", "both, only_first, only_second, neither: pairs by which of their two runs grokked "
        "(values: first | second); unpaired: runs with no partner, left out. mcnemar_p: the "
        "exact McNemar test (two-sided binomial test of only_first among the discordant pairs "
        "at 1/2); holm: Holm over the classes."]) + "\n"


def alike(frame: pd.DataFrame, by: Sequence[str], rows: Sequence[str],
          permutations: int = 9_999, seed: int = 0) -> dict:
    """``--alike``: do the rows (values of ``rows``) within each class of ``by`` (the classes of
    ``by`` less ``rows``, so that ``--by p,orbit,a,b --alike a,b`` lists each row and tests the
    rows of each orbit) end alike? The
    statistic is the sum over the classes holding two or more rows of the chi-square statistic of
    their rows x outcome (COUNTED) table; its p-value counts how often shuffling the outcomes
    among each class's runs (``permutations`` seeded shuffles; both margins stay fixed) gives a
    sum at least as large. Returns the classes, rows and runs tested, the statistic and p."""
    import numpy as np

    by = [k for k in by if k not in rows]
    rng = np.random.default_rng(seed)
    outcome_code = {o: k for k, o in enumerate(COUNTED)}
    observed, shuffled = 0.0, np.zeros(permutations)
    n_classes = n_rows = n_runs = 0
    groups = frame.groupby(by, dropna=False) if by else [((), frame)]
    for _, group in groups:
        row = group.groupby(list(rows), dropna=False).ngroup().to_numpy()
        if row.max(initial=0) < 1:
            continue  # one row: nothing to compare within the class
        out = group.outcome.map(outcome_code).to_numpy()
        observed += _chi2(row[None, :], out[None, :])[0]
        shuffled += _chi2(row[None, :], rng.permuted(np.tile(out, (permutations, 1)), axis=1))
        n_classes, n_rows, n_runs = n_classes + 1, n_rows + row.max() + 1, n_runs + len(row)
    if not n_classes:
        raise AnalysisError(f"--alike {','.join(rows)}: no class of --by {','.join(by) or '-'} "
                            "holds two or more rows; nothing to compare")
    p = (1 + int((shuffled >= observed - 1e-9).sum())) / (1 + permutations)
    return {"by": by, "classes": n_classes, "rows": n_rows, "runs": n_runs, "chi2": observed,
            "p": p, "permutations": permutations}


def _chi2(row, out):
    """The chi-square statistic of the rows x outcomes table of each line of ``out`` (shape
    (P, n); ``row`` (1, n) gives each run's row), over the cells whose expected count is > 0."""
    import numpy as np

    n_rows, n_out, n = int(row.max()) + 1, len(COUNTED), out.shape[1]
    cells = (np.arange(out.shape[0])[:, None] * n_rows * n_out + row * n_out + out).ravel()
    table = np.bincount(cells, minlength=out.shape[0] * n_rows * n_out).reshape(
        out.shape[0], n_rows, n_out)
    expected = table[0].sum(axis=1)[:, None] * table[0].sum(axis=0)[None, :] / n
    present = expected > 0
    return (((table - expected) ** 2)[:, present] / expected[present]).sum(axis=1)


def _fisher(group: pd.DataFrame) -> float:
    """Fisher's exact p of grokked against not grokked between a class's two lines (NaN where a
    line is missing)."""
    from scipy.stats import fisher_exact

    if len(group) != 2:
        return math.nan
    grokked = group.grokked.to_numpy()
    return float(fisher_exact([[grokked[0], group.runs.iloc[0] - grokked[0]],
                               [grokked[1], group.runs.iloc[1] - grokked[1]]]).pvalue)


def render(table: pd.DataFrame, by: Sequence[str], field: str | None, n_rows: int,
           matched_runs: bool = True) -> str:
    heading = f"Outcomes of {int(table.runs.sum())} runs" + (f" by {', '.join(by)}" if by else "")
    values = ", ".join(str(v) for v in sorted(table[field].unique(), key=_in_order)) if field else ""
    if field and matched_runs:
        heading += (f"; {field} compared on the same runs of {n_rows} rows under each of its "
                    f"values ({values})")
    elif field:
        heading += f"; {field} compared between its values ({values}) on every run"
    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    lines = [heading, "", format_table(list(table.columns), cells, align="l" * len(by) + "r",
                                       strip=True), "",
             "Runs: status reached or not_reached (diverged, failed and unfinished left out). "
             "grokked: the grok signal held the threshold after a delay and not by lookup."]
    if "fisher_p" in table:
        lines.append("fisher_p: Fisher's exact test (two-sided) of grokked against not grokked "
                     "between the two values, in each class that holds two; holm: Holm over "
                     "those classes. Runs taken as independent (they are not quite: see "
                     "python -m analysis.outcomes --help).")
    return "\n".join(lines) + "\n"


def _in_order(value) -> tuple:
    """Numbers in order, then text (a missing covariate prints as "-")."""
    return (1, str(value), 0.0) if isinstance(value, str) else (0, "", float(value))


def render_alike(result: dict, rows: str) -> str:
    return (f"\nDo the rows ({rows}) within each class of {', '.join(result['by'])} end alike? "
            f"{result['classes']} classes with two or more rows, {result['rows']} rows, "
            f"{result['runs']} runs: summed chi-square of rows x outcomes {result['chi2']:.2f}, "
            f"permutation p = {result['p']:.3g} ({result['permutations']:,} seeded shuffles of "
            "the outcomes within each class; a small p: some rows of a class end differently).\n")


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else (f"{value:.3g}" if not value.is_integer() or
                                             value < 1 else f"{value:g}")
    return str(value)


def build_parser():
    parser = OneLineErrorParser(
        prog="python -m analysis.outcomes",
        description="Outcome counts (grokked, no_delay, lookup, not_generalized) of expmod runs by "
                    "covariate class, and with --compare FIELD (the same runs under each value) "
                    "or --between COVARIATE (every run) Fisher's exact test of grokked against "
                    "not between two values, per class (Holm over the classes). "
                    "Covariates: " + ", ".join(COVARIATES) + ".")
    add_source_arguments(parser)
    parser.add_argument("--by", default="bijective_a,bijective_b", metavar="COVARIATES",
                        help="the classes: comma-separated covariates (default: "
                             "bijective_a,bijective_b)")
    parser.add_argument("--alike", default=None, metavar="FIELDS",
                        help="also test whether the rows named by FIELDS (e.g. a,b) end alike "
                             "within each class of --by less FIELDS (--by p,orbit,a,b: the rows "
                             "of each orbit at each prime): a permutation test of "
                             "the summed chi-square statistic of rows x outcomes (9,999 "
                             "seeded shuffles of the outcomes within each class)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--compare", default=None, metavar="FIELD",
                     help="a setting that names rows (e.g. split): counts per value, on the "
                          "rows run under every value")
    how.add_argument("--between", default=None, metavar="COVARIATE",
                     help="a covariate that rows differ by (e.g. relative_order): counts per "
                          "value on every run, and Fisher's test in each class of --by that "
                          "holds exactly two of its values")
    parser.add_argument("--paired", action="store_true",
                        help="with --compare or --between: also match the two values' runs by "
                             "seed and data seed (and the rest of the row under --compare) and "
                             "give the exact McNemar test of the pairs, per class")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        by = class_names(args.by)
        field = args.compare or (between(args.between) if args.between else None)
        by = [k for k in by if k != field]  # the compared field is a column of its own
        trials, _ = load_trials(args)
        frame = hazard_frame(matched(trials, args.compare) if args.compare else trials)
        n_rows = len(frame.groupby([f for f in ROW_FIELDS if f != args.compare and f in frame]))
        if args.paired and not field:
            raise AnalysisError("--paired matches the runs of two values: give it with "
                                "--compare FIELD or --between COVARIATE")
        text = render(count(frame, by, field), by, field, n_rows,
                      matched_runs=bool(args.compare))
        if args.paired:
            compare = bool(args.compare)
            text += render_paired(paired(frame, by, field, compare), by, field, compare)
        if args.alike:
            text += render_alike(alike(frame, by, class_names(args.alike, "--alike")),
                                 args.alike)
    except AnalysisError as err:
        return fail(str(err))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
