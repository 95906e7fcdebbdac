"""The paper's Table 1 from a sweep: one row per configuration, its replicates as censored data.

    python -m analysis.grok_table --experiment NAME [--tracking-uri URI]     # from MLflow
    python -m analysis.grok_table --trials trials.csv                        # from a trials CSV
        [--format text|md|csv|latex] [--out FILE] [--write-trials FILE] [--reference A,B,P]
        [--pairwise ROW ROW ... | --compare FIELD] [--plot-km FILE] [--plot-heatmap FILE]
        [--only KEY=VALUE ...] [--no-log]

**Trials.** One line per trial run (``trials_from_runs``; ``--write-trials`` saves them, and
``--trials`` reads such a file back, so a committed CSV regenerates its table without MLflow).

**Rows.** A configuration is (task, the task's own ``table_keys``, split, dtype, frac_train): for
expmod (a, b, p); the replicates (seed, data_seed) are aggregated.

**Statistics** (``analysis.stats``, over scipy.stats). A trial's threshold epoch is the first
evaluation from which its grok signal held the threshold to the end (status ``reached``; that is
not yet grokking: ``shows`` says what it was). A trial that did not reach it within its budget
is *right-censored* at ``epochs_run``: it says "later than this", not "never". Diverged, failed
and unfinished trials are counted and left out of the estimates. Per row: ``reached`` k of
``runs``; ``threshold_km_median`` the Kaplan-Meier median (the first epoch by which the
estimated share of runs not yet at the threshold is <= 0.5; empty when fewer than half reached
it) with its 95% interval ``threshold_km_ci_low``-``threshold_km_ci_high`` (the epochs where the
log-log pointwise band of that share contains 0.5; an empty upper end means unbounded: the data
cannot rule out a later median); ``threshold_epoch_min``/``_max`` observed; ``logrank_p`` the
two-sided log-rank test of the row's threshold epochs against the reference row's
(``--reference``, default the first row), and
``logrank_p_holm`` those p-values Holm-corrected over the rows. ``--pairwise`` tests chosen rows
against each other instead (Holm over the pairs), and ``--compare FIELD`` each row run with
several values of one setting across those values (``--compare split``: pairs against classes
for every (a, b, p) run with both; Holm over all the tests), then pooled over those rows in one
log-rank test stratified by row (``analysis.logrank``). The paper's single-run figure is tested
as one new run of its row (``analysis.lognormal``): ``paper_pi_low``-``paper_pi_high`` the 95%
prediction interval from the row's runs, ``paper_p`` and ``paper_p_holm`` (Holm over the rows
tested), ``paper_vs_runs`` in words. ``--only KEY=VALUE`` keeps the trials with that setting
(``analysis.source``).

**What a row shows** (``shows``): the trials' outcomes (``grokcore.signals``): ``grokking``
(generalized at least ``grok_min_delay`` evaluations after memorizing), ``no delay`` (generalized
with or before memorization), ``lookup`` (test accuracy held the threshold but the test examples
whose class (x^a, y^b) has no training example did not: test accuracy was lookup, not
generalization), ``none`` (never held) and ``diverged``; a row whose trials differ lists the
counts. A task adds its own columns (its ``table_columns``, ``grokcore/tasks/``): each expmod row
has the unseen-class accuracy at the end (``unseen_acc``, median), how many test examples are
unseen (``n_test_unseen``), the leakage, the label statistics, whether x -> x^a and y -> y^b are
bijections, and (its ``paper_figures``) the paper's single-run grok epoch
(analysis/data/seed_table1.csv). Other tasks' rows have the median end values of their
``table_metrics``.

**Formats.** ``text`` (default) fits 120 columns: settings shared by every row are printed once
above the table. ``md``, ``csv`` and ``latex`` hold every column.

Modules: ``analysis.trials`` (the input), ``analysis.table`` (the rows), ``analysis.stats`` (the
estimators), ``analysis.table_render`` (the formats), ``analysis.publish`` (MLflow).

**In MLflow** (``analysis.publish``; ``--no-log`` leaves the store untouched): the table (all formats),
the trials CSV and the figures become artifacts of the sweep's parent run (``--sweep NAME``, else
the experiment's latest sweep), and the Markdown table the descriptions that the UI shows on top:
the experiment's (all its trials) and the sweep run's (that sweep's trials). ``--sweep`` also
limits the table to that sweep's trials. An experiment whose sweeps have no parent run (written
before they had one) gets a run named ``grok_table`` tagged ``run_kind=analysis`` instead, which
readers of trials skip. A table of some trials (``--only``) is not stored. The sweeps publish their table themselves when they end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.publish import publish, table_files
from analysis.runs import AnalysisError, fail
from analysis.source import add_source_arguments, load_trials
from analysis.table import build_table, compare_by, pairwise
from analysis.table_render import render, render_compare, render_pairs
from analysis.trials import param_value, config_keys, trials_from_runs
from grokcore.cli import OneLineErrorParser

__all__ = ["build_table", "main", "trials_from_runs"]  # the table's entry points, re-exported


def plot_km(trials: pd.DataFrame, path: Path, title: str | None = None) -> Path:
    """The Kaplan-Meier curves of every row (``analysis.figures_km``), one figure per task
    (``path`` for the first task, ``<stem>_<task>.png`` for the others)."""
    from analysis.figures_km import plot_km as draw

    out = None
    for i, (task, of_task) in enumerate(trials.groupby("task", sort=True)):
        keys = [k for k in config_keys(task) if k != "task"]
        varying = [k for k in keys if of_task[k].nunique(dropna=False) > 1] or keys[:1]
        target = path if i == 0 else path.with_name(f"{path.stem}_{task}{path.suffix}")
        draw(of_task, varying, target,
             title=title or f"{task}: share of runs not yet at the threshold",
             style_key="split" if "split" in varying else None)
        out = out or target
    return out


def _row_values(text: str) -> list:
    return [param_value(v) for v in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m analysis.grok_table",
                     description="Print the grok-epoch table (the paper's Table 1) of a sweep "
                                 "stored in MLflow, or of a trials CSV, with censored statistics.")
    add_source_arguments(parser, sweep_help=(
        "only the trials of this sweep (its MLflow tag 'sweep'); the table goes to its parent "
        "run (default: every trial of the experiment, and the table goes to the latest "
        "sweep's run)"))
    parser.add_argument("--format", choices=("text", "md", "csv", "latex"), default="text",
                        help="text fits 120 columns; md, csv and latex hold every column "
                             "(default: text)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here too")
    parser.add_argument("--write-trials", type=Path, default=None, metavar="FILE",
                        help="write one line per trial (the table's input) to this CSV")
    parser.add_argument("--reference", type=_row_values, default=None, metavar="A,B,P",
                        help="the row every row is log-rank tested against: the values of the "
                             "task's table keys, e.g. 1,1,113 (default: the first row)")
    parser.add_argument("--pairwise", type=_row_values, nargs="+", default=None, metavar="ROW",
                        help="instead of the table: log-rank tests between these rows, each "
                             "given as for --reference (Holm over the pairs)")
    parser.add_argument("--compare", default=None, metavar="FIELD",
                        help="instead of the table: for every row run with several values of "
                             "FIELD (a setting that names rows, e.g. split), log-rank tests "
                             "between those values (Holm over all the tests)")
    parser.add_argument("--plot-km", type=Path, default=None, metavar="FILE",
                        help="Kaplan-Meier figure (PNG): share of runs whose test accuracy has "
                             "not yet held the threshold, by epoch")
    parser.add_argument("--plot-heatmap", type=Path, default=None, metavar="FILE",
                        help="heat map of the KM median threshold epoch over (a, b) (expmod; PNG)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not store the table in MLflow (artifacts of the sweep's run, "
                             "descriptions of the run and the experiment)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        trials, client = load_trials(args)
        if args.write_trials:
            _write(args.write_trials, trials.to_csv(index=False))
        if args.pairwise:
            text = render_pairs(pairwise(trials, args.pairwise))
            table = None
        elif args.compare:
            keys, tests, pooled = compare_by(trials, args.compare)
            text = render_compare(keys, args.compare, tests, pooled)
            table = None
        else:
            table = build_table(trials, args.reference)
            text = render(table, args.format)
        if args.out:
            _write(args.out, text)
        figures = _figures(args, trials, table)
        if client is not None and table is not None and not args.no_log and not args.only:
            # (a table of some of the sweep's trials, --only, is not the sweep's table)
            publish(client, args.experiment, args.sweep, table_files(table, trials, figures),
                    source="`python -m analysis.grok_table`")
    except AnalysisError as err:
        return fail(str(err))
    sys.stdout.write(text)
    return 0


def _figures(args, trials: pd.DataFrame, table: pd.DataFrame | None) -> dict[str, Path]:
    from analysis.figures_progress import plot_grok_heatmap

    figures = {}
    if args.plot_km:
        figures["grok_km.png"] = plot_km(trials, args.plot_km)
    if args.plot_heatmap and table is not None:
        if "expmod" not in set(table.task):
            raise AnalysisError("--plot-heatmap needs expmod rows")
        figures["grok_heatmap.png"] = plot_grok_heatmap(table, args.plot_heatmap)
    return figures


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise AnalysisError(f"cannot write {path}: {err.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
