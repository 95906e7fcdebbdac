"""The paper's Table 1 from a sweep: one row per configuration, its replicates as censored data.

    python -m analysis.grok_table --experiment NAME [--tracking-uri URI]     # from MLflow
    python -m analysis.grok_table --trials trials.csv                        # from a trials CSV
        [--format text|md|csv|latex] [--out FILE] [--write-trials FILE] [--reference A,B,P]
        [--pairwise ROW ROW ...] [--plot-km FILE] [--plot-heatmap FILE] [--no-log]

**Trials.** One line per trial run (``trials_from_runs``; ``--write-trials`` saves them, and
``--trials`` reads such a file back, so a committed CSV regenerates its table without MLflow).

**Rows.** A configuration is (task, the task's own ``table_keys``, split, dtype, frac_train): for
expmod (a, b, p); the replicates (seed, data_seed) are aggregated.

**Statistics** (``analysis.stats``, over scipy.stats). A trial's grok epoch is the first
evaluation from which its grok signal held the threshold to the end. A trial that did not grok
within its budget is *right-censored* at ``epochs_run``: it says "later than this", not "never".
Diverged, failed and unfinished trials are counted and left out of the estimates. Per row:
``grokked`` k of ``runs``; ``grok_km_median`` the Kaplan-Meier median (the first epoch by which
the estimated share of runs not yet grokked is <= 0.5; empty when fewer than half grokked) with
its 95% interval ``grok_km_ci_low``-``grok_km_ci_high`` (the epochs where the log-log pointwise
band of that share contains 0.5; an empty upper end means unbounded: the data cannot rule out a
later median); ``grok_epoch_min``/``_max`` observed; ``logrank_p`` the two-sided log-rank test of
the row's grok times against the reference row's (``--reference``, default the first row), and
``logrank_p_holm`` those p-values Holm-corrected over the rows. ``--pairwise`` tests chosen rows
against each other instead (Holm over the pairs).

**What a row shows** (``shows``): the trials' outcomes (``grokcore.signals``): ``grokking``
(generalized at least ``grok_min_delay`` evaluations after memorizing), ``no delay`` (generalized
with or before memorization), ``lookup`` (test accuracy held the threshold but the test examples
whose class (x^a, y^b) has no training example did not: test accuracy was lookup, not
generalization), ``none`` (never held) and ``diverged``; a row whose trials differ lists the
counts. Each expmod row also has the unseen-class accuracy at the end (``unseen_acc``, median),
how many test examples are unseen (``n_test_unseen``), the leakage, the label statistics, whether
x -> x^a and y -> y^b are bijections, and the paper's single-run grok epoch
(analysis/data/seed_table1.csv). Another task's row has the median end value of its
``table_metrics`` instead.

**Formats.** ``text`` (default) fits 120 columns: settings shared by every row are printed once
above the table. ``md``, ``csv`` and ``latex`` hold every column.

**In MLflow** (:func:`publish`; ``--no-log`` leaves the store untouched): the table (all formats),
the trials CSV and the figures become artifacts of the sweep's parent run (``--sweep NAME``, else
the experiment's latest sweep), and the Markdown table the descriptions that the UI shows on top:
the experiment's (all its trials) and the sweep run's (that sweep's trials). ``--sweep`` also
limits the table to that sweep's trials. An experiment whose sweeps have no parent run (written
before they had one) gets a run named ``grok_table`` tagged ``run_kind=analysis`` instead, which
readers of trials skip. The sweeps call :func:`publish` themselves when they end.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from analysis import stats
from analysis.runs import (AnalysisError, client_for, experiment_id, fail, find_sweep_run,
                           log_analysis_run, log_files, load_runs, set_description, tag_value)
from grokcore.records import DEFAULT_TRACKING_URI, OUTCOME_VALUES, SWEEP_TAG
from grokcore.tasks import TASKS

SEED_TABLE = Path(__file__).parent / "data" / "seed_table1.csv"
EXPMOD_STATS = ("label_entropy", "label_chi2_pvalue", "leakage", "n_test_unseen", "bijective_a",
                "bijective_b")
# What a trial line holds beside its task's keys (and the task metrics of its task).
TRIAL_COLUMNS = ("split", "dtype", "frac_train", "seed", "data_seed", "status", "outcome",
                 *OUTCOME_VALUES, "epochs_run", "final_test_acc", "final_test_acc_unseen",
                 *EXPMOD_STATS, "seconds", "run_name")
SHOWS = {"grokked": "grokking", "no_delay": "no delay", "lookup": "lookup",
         "not_generalized": "none", "diverged": "diverged"}


# ---- trials --------------------------------------------------------------------------------------
def config_keys(task: str) -> tuple[str, ...]:
    """The settings that name a row of ``task``: its ``table_keys``, the split (where the task
    has a choice of splits), dtype, frac_train."""
    known = TASKS.get(task)
    keys = known.table_keys if known else ()
    split = ("split",) if known and len(known.splits) > 1 and "split" not in keys else ()
    return ("task", *keys, *split, "dtype", "frac_train")


def task_metrics(task: str) -> tuple[str, ...]:
    return TASKS[task].table_metrics if task in TASKS else ()


def _param_value(value):
    """A param as MLflow stores it (a string) back to a number where it is one, so keys sort."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "none"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number


def _column(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    return runs[name] if name in runs else pd.Series([default] * len(runs), index=runs.index,
                                                     dtype=object)


def trials_from_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per trial run (``analysis.runs.load_runs``): its row keys, seeds, end values,
    end metrics and dataset statistics, under the names of TRIAL_COLUMNS."""
    tasks = _column(runs, "params.task", "expmod").fillna("expmod")
    trials = pd.DataFrame({"task": tasks}, index=runs.index)
    params = {k for task in trials.task.unique() for k in config_keys(task)}
    for key in sorted(params - {"task"}) + ["seed", "data_seed"]:
        trials[key] = _column(runs, f"params.{key}").map(_param_value)
    trials["frac_train"] = pd.to_numeric(trials["frac_train"], errors="coerce")
    # A run with no end tag either failed before reporting (MLflow FAILED) or was interrupted
    # and not resumed yet (RUNNING / KILLED): the latter is unfinished, not failed.
    # (``status`` is MLflow's run status, ``tags.status`` the trial's end value.)
    unended = _column(runs, "status", "FAILED").map(
        lambda s: "failed" if s == "FAILED" else "unfinished")
    status = _column(runs, "tags.status")
    trials["status"] = status.where(status.notna(), unended)
    outcome = _column(runs, "tags.outcome").map(lambda v: None if v in (None, "none") else v)
    ended = trials.status.isin([*stats.ESTIMABLE, "diverged"])
    trials["outcome"] = outcome.where(ended & outcome.notna(), None)
    for name in OUTCOME_VALUES:
        trials[name] = _column(runs, f"tags.{name}").map(tag_value).astype(float)
    metrics = {"epochs_run": "epochs_run", "final_test_acc": "test_acc",
               "final_test_acc_unseen": "test_acc_unseen", "seconds": "seconds",
               **{m: m for m in EXPMOD_STATS},
               **{m: m for task in trials.task.unique() for m in task_metrics(task)}}
    for name, metric in metrics.items():
        trials[name] = pd.to_numeric(_column(runs, f"metrics.{metric}", math.nan),
                                     errors="coerce")
    trials["run_name"] = _column(runs, "tags.mlflow.runName", "")
    first = ["task", *sorted(params - {"task"} - set(TRIAL_COLUMNS))]
    return trials[first + [c for c in trials if c not in first]].reset_index(drop=True)


def read_trials(path: Path) -> pd.DataFrame:
    try:
        trials = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AnalysisError(f"cannot read trials from {path}: {err}") from None
    missing = [c for c in ("task", "status", "grok_epoch", "epochs_run") if c not in trials]
    if missing:
        raise AnalysisError(f"{path} is not a trials CSV (no column {', '.join(missing)}); write "
                            "one with --write-trials")
    return trials.astype({"outcome": object}) if "outcome" in trials else trials


# ---- the table -----------------------------------------------------------------------------------
def seed_table() -> pd.DataFrame:
    return pd.read_csv(SEED_TABLE)


def paper_figure(seed: pd.DataFrame, task: str, a, b, p) -> str:
    if task != "expmod":
        return ""
    hit = seed[(seed.a == a) & (seed.b == b) & (seed.p == p)]
    if hit.empty:
        return ""
    row = hit.iloc[0]
    return str(int(row.grok_epoch)) if int(row.grokked) else "no grok"


def shows(group: pd.DataFrame) -> str:
    """What the row's trials show, in words (see the module doc)."""
    counts = group.outcome.dropna().map(lambda o: SHOWS.get(o, o)).value_counts()
    if counts.empty:
        return "-"
    if len(counts) == 1:
        return counts.index[0]
    return ", ".join(f"{word} {n}" for word, n in counts.items())


def _row_columns(task: str, group: pd.DataFrame, key: dict, seed: pd.DataFrame) -> dict:
    """The columns beside the survival statistics: outcomes, medians, dataset statistics."""
    reached = group[group.status == "grokked"]
    row = {"shows": shows(group),
           "memorization_epoch_median": _median(group.memorization_epoch),
           "grok_delay_median": _median(reached.grok_delay),
           "spikes": int(group.n_spikes.fillna(0).sum()),
           "test_acc_median": _median(group.final_test_acc)}
    if task == "expmod":
        row.update({
            "unseen_acc": _median(group.final_test_acc_unseen),
            "n_test_unseen": _median(group.n_test_unseen),
            "leakage": group.leakage.mean() if group.leakage.notna().any() else None,
            "label_entropy": _median(group.label_entropy),
            "label_chi2_pvalue": _median(group.label_chi2_pvalue),
            "bijective_a": _flag(group.bijective_a),
            "bijective_b": _flag(group.bijective_b),
            "paper_grok_epoch": paper_figure(seed, task, key["a"], key["b"], key["p"]),
        })
    for name in task_metrics(task):
        row[f"final_{name}"] = _median(group[name])
    return row


def build_table(trials: pd.DataFrame, reference: Sequence[Any] | None = None,
                seed: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per configuration (``config_keys``), tasks in turn; see the module doc.

    ``reference``: the values of the task's ``table_keys`` naming the log-rank reference row
    (the first row with them); default the first row of each task.
    """
    seed = seed_table() if seed is None else seed
    if trials.empty:
        return pd.DataFrame()
    tables = []
    for task, of_task in trials.groupby("task", sort=True):
        keys = list(config_keys(task))
        of_task = of_task.copy()
        for col in ("n_spikes", "memorization_epoch", "grok_delay", "final_test_acc",
                    "final_test_acc_unseen", *EXPMOD_STATS, *task_metrics(task)):
            if col not in of_task:
                of_task[col] = math.nan
        for col in keys:
            of_task[col] = of_task[col].fillna("none")
        ref = _reference_key(of_task, keys, task, reference)
        try:
            survival = stats.survival_table(of_task, keys, ref)
        except ValueError as err:
            raise AnalysisError(f"{task} trials: {err}") from None
        survival = survival.rename(columns={"grok_min": "grok_epoch_min",
                                            "grok_max": "grok_epoch_max"})
        names = [tuple(r) for r in survival[keys].itertuples(index=False)]
        survival["reference"] = [name == (ref or names[0]) for name in names]
        groups = stats.group_trials(of_task, keys)
        extra = [_row_columns(task, groups[tuple(r)], dict(zip(keys, r)), seed)
                 for r in survival[keys].itertuples(index=False)]
        tables.append(pd.concat([survival, pd.DataFrame(extra)], axis=1))
    return pd.concat(tables, ignore_index=True)


def _reference_key(trials: pd.DataFrame, keys: list[str], task: str,
                   reference: Sequence[Any] | None) -> tuple | None:
    """The full row key of the first row whose table keys are ``reference`` (None: first row)."""
    if reference is None:
        return None
    table_keys = TASKS[task].table_keys if task in TASKS else ()
    if len(reference) != len(table_keys):
        raise AnalysisError(f"--reference needs {len(table_keys)} values for {task} "
                            f"({','.join(table_keys)}), got {','.join(map(str, reference))}")
    want = dict(zip(table_keys, reference))
    hits = sorted(tuple(r) for r in trials[keys].drop_duplicates().itertuples(index=False)
                  if all(_same(getattr(r, k), v) for k, v in want.items()))
    if not hits:
        raise AnalysisError(f"no {task} row has {', '.join(f'{k}={v}' for k, v in want.items())}"
                            "; --reference names a row of the table")
    return hits[0]


def _same(value, wanted) -> bool:
    return str(_param_value(value)) == str(_param_value(wanted))


def pairwise(trials: pd.DataFrame, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Log-rank p of every pair of the chosen expmod-style rows (values of the task's
    table_keys), Holm-corrected over the pairs; the rows must belong to one task."""
    tasks = sorted(set(trials.task))
    if len(tasks) != 1:
        raise AnalysisError(f"--pairwise needs the trials of one task; these have {tasks}")
    task = tasks[0]
    keys = list(config_keys(task))
    chosen = [_reference_key(trials, keys, task, r) for r in rows]
    try:
        return stats.pairwise_logrank(trials, keys, chosen)
    except ValueError as err:
        raise AnalysisError(str(err)) from None


def _median(values: pd.Series):
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def _flag(values: pd.Series):
    values = values.dropna()
    return bool(values.iloc[0]) if len(values) else None


# ---- rendering -----------------------------------------------------------------------------------
def _int(v) -> str:
    return "-" if v is None or pd.isna(v) else str(int(round(v)))


def _num(v, fmt: str) -> str:
    return "-" if v is None or pd.isna(v) else fmt.format(v)


def _yes(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else ("yes" if v else "no")


def km_text(r: dict) -> str:
    """E.g. ``5000 [3000, 9000]``, ``5000 [3000, -)`` (unbounded above), ``not reached`` when
    fewer than half the runs grokked, ``-`` with no estimable run."""
    if pd.isna(r["grok_km_median"]):
        estimable = r["grokked"] + r["censored"]
        return "not reached" if estimable else "-"
    high = "-)" if pd.isna(r["grok_km_ci_high"]) else f"{_int(r['grok_km_ci_high'])}]"
    return f"{_int(r['grok_km_median'])} [{_int(r['grok_km_ci_low'])}, {high}"


def _p_text(r: dict) -> str:
    if r.get("reference"):
        return "ref."
    return (f"{_num(r['logrank_p'], '{:.2g}')} ({_num(r['logrank_p_holm'], '{:.2g}')})"
            if not pd.isna(r["logrank_p"]) else "-")


def columns(task: str, full: bool) -> list[tuple[str, Any]]:
    """(header, cell function of a row dict) for one task's table; ``full``: every column."""
    keys = [k for k in config_keys(task) if k != "task"]
    cols: list[tuple[str, Any]] = [("task", lambda r: str(r["task"]))] if full else []
    cols += [(("frac" if k == "frac_train" else k), (lambda r, k=k: f"{r[k]:g}"
              if k == "frac_train" else str(r[k]))) for k in keys]
    cols += [("shows", lambda r: r["shows"]),
             ("grokked", lambda r: f"{r['grokked']}/{r['runs']}"),
             ("KM median [95% CI]", km_text),
             ("p (Holm)", _p_text)]
    if full:
        cols += [("observed", lambda r: "-" if pd.isna(r["grok_epoch_min"]) else
                  f"{_int(r['grok_epoch_min'])}-{_int(r['grok_epoch_max'])}"),
                 ("memorized", lambda r: _int(r["memorization_epoch_median"])),
                 ("delay", lambda r: _int(r["grok_delay_median"])),
                 ("spikes", lambda r: str(r["spikes"])),
                 ("diverged", lambda r: str(r["diverged"])),
                 ("failed", lambda r: str(r["failed"])),
                 ("unfinished", lambda r: str(r["unfinished"]))]
    if task == "expmod":
        cols += [("test acc", lambda r: _num(r["test_acc_median"], "{:.3f}")),
                 ("unseen", lambda r: _num(r["unseen_acc"], "{:.3f}")),
                 ("leakage", lambda r: _num(r["leakage"], "{:.2f}"))]
        if full:
            cols += [("n unseen", lambda r: _int(r["n_test_unseen"])),
                     ("label entropy", lambda r: _num(r["label_entropy"], "{:.4f}")),
                     ("chi2 p", lambda r: _num(r["label_chi2_pvalue"], "{:.3g}")),
                     ("x^a bij.", lambda r: _yes(r["bijective_a"])),
                     ("y^b bij.", lambda r: _yes(r["bijective_b"]))]
        cols += [("paper", lambda r: r["paper_grok_epoch"] or "-")]
    else:
        cols += [(f"final {m}", (lambda r, m=m: _num(r[f"final_{m}"], "{:.4g}")))
                 for m in task_metrics(task)]
    return cols


def render(table: pd.DataFrame, fmt: str) -> str:
    """The whole table as CSV, or one text / markdown / LaTeX table per task."""
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt not in ("text", "md", "latex"):
        raise AnalysisError(f"unknown format {fmt!r}; choose text, md, csv or latex")
    parts = []
    for task in dict.fromkeys(table.task):
        rows = table[table.task == task].to_dict("records")
        cols = columns(task, full=fmt != "text")
        cells = [[cell(r) for _, cell in cols] for r in rows]
        head = [h for h, _ in cols]
        if fmt == "md":
            parts.append(_markdown(head, cells))
        elif fmt == "latex":
            parts.append(_latex(head, cells))
        else:
            parts.append(_text(task, head, cells))
    return "\n".join(parts)


def _shared(head: list[str], rows: list[list[str]]) -> list[int]:
    """The columns with one value in every row (of several), which the brief formats print once
    above the table."""
    return [j for j in range(len(head)) if len(rows) > 1 and len({r[j] for r in rows}) == 1
            and head[j] not in ("shows", "grokked", "p (Holm)")]


def render_brief_md(table: pd.DataFrame) -> str:
    """The ``text`` format's columns as Markdown (for descriptions in the MLflow UI): per task,
    a line with the settings every row shares, then a table of the rest."""
    parts = []
    for task in dict.fromkeys(table.task):
        cols = columns(task, full=False)
        head = [h for h, _ in cols]
        rows = [[cell(r) for _, cell in cols] for r in table[table.task == task].to_dict("records")]
        shared = _shared(head, rows)
        keep = [j for j in range(len(head)) if j not in shared]
        same = ", ".join(f"{head[j]} {rows[0][j]}" for j in shared)
        parts.append(f"**{task}**" + (f" ({same})" if same else "") + "\n\n"
                     + _markdown([head[j] for j in keep], [[r[j] for j in keep] for r in rows]))
    return "\n".join(parts)


def _text(task: str, head: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; a column with one value in every row moves to a line above."""
    shared = _shared(head, rows)
    lines = [f"{task}: " + ", ".join(f"{head[j]} {rows[0][j]}" for j in shared)] if shared else \
        [f"{task}:"]
    keep = [j for j in range(len(head)) if j not in shared]
    table = [[head[j] for j in keep]] + [[r[j] for j in keep] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(keep))]
    lines += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in
                        enumerate(zip(r, widths))).rstrip() for r in table]
    return "\n".join(lines) + "\n"


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _latex(head: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("^", r"\^{}") \
                .replace("%", r"\%").replace("&", r"\&")
    lines = [r"\begin{tabular}{" + "l" * len(head) + "}", r"\hline",
             " & ".join(esc(h) for h in head) + r" \\", r"\hline"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_pairs(pairs: pd.DataFrame) -> str:
    """One line per pair of rows, each row named by its task's table keys (e.g. ``1,1,113``)."""
    def name(key: tuple) -> str:
        n = len(TASKS[key[0]].table_keys) if key[0] in TASKS else 0
        return ",".join(map(str, key[1:1 + n]))

    lines = ["row i | row j | log-rank p | Holm"]
    for r in pairs.itertuples():
        lines.append(f"{name(r.row_i)} | {name(r.row_j)} | {_num(r.p, '{:.3g}')} | "
                     f"{_num(r.p_holm, '{:.3g}')}")
    return "\n".join(lines) + "\n"


# ---- figures -------------------------------------------------------------------------------------
def plot_km(trials: pd.DataFrame, path: Path, title: str | None = None) -> Path:
    """The Kaplan-Meier curves of every row (``analysis.figures_km``), one figure per task
    (``path`` for the first task, ``<stem>_<task>.png`` for the others)."""
    from analysis.figures_km import plot_km as draw

    out = None
    for i, (task, of_task) in enumerate(trials.groupby("task", sort=True)):
        keys = [k for k in config_keys(task) if k != "task"]
        varying = [k for k in keys if of_task[k].nunique(dropna=False) > 1] or keys[:1]
        target = path if i == 0 else path.with_name(f"{path.stem}_{task}{path.suffix}")
        draw(of_task, varying, target, title=title or f"{task}: share of runs not yet grokked")
        out = out or target
    return out


# ---- command line --------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and a hint, not the usage text
        self.exit(2, f"error: {message} (see --help)\n")


def _row_values(text: str) -> list:
    return [_param_value(v) for v in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m analysis.grok_table",
                     description="Print the grok-epoch table (the paper's Table 1) of a sweep "
                                 "stored in MLflow, or of a trials CSV, with censored statistics.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--experiment", help="MLflow experiment name of the sweep")
    src.add_argument("--trials", type=Path,
                     help="a trials CSV (written by --write-trials) instead of MLflow")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI})")
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
    parser.add_argument("--plot-km", type=Path, default=None, metavar="FILE",
                        help="Kaplan-Meier figure (PNG): share of runs not yet grokked by epoch")
    parser.add_argument("--plot-heatmap", type=Path, default=None, metavar="FILE",
                        help="heat map of the KM median grok epoch over (a, b) (expmod; PNG)")
    parser.add_argument("--sweep", default=None, metavar="NAME",
                        help="only the trials of this sweep (its MLflow tag 'sweep'); the table "
                             "goes to its parent run (default: every trial of the experiment, "
                             "and the table goes to the latest sweep's run)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not store the table in MLflow (artifacts of the sweep's run, "
                             "descriptions of the run and the experiment)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client = None
        if args.trials is not None:
            trials = read_trials(args.trials)
        else:
            client = client_for(args.tracking_uri)
            runs = sweep_runs(load_runs(client, args.experiment), args.experiment, args.sweep)
            trials = trials_from_runs(runs)
        if args.write_trials:
            _write(args.write_trials, trials.to_csv(index=False))
        if args.pairwise:
            text = render_pairs(pairwise(trials, args.pairwise))
            table = None
        else:
            table = build_table(trials, args.reference)
            text = render(table, args.format)
        if args.out:
            _write(args.out, text)
        figures = _figures(args, trials, table)
        if client is not None and table is not None and not args.no_log:
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


def table_files(table: pd.DataFrame, trials: pd.DataFrame,
                figures: dict[str, Path] | None = None) -> dict[str, str | bytes]:
    """What the analysis stores in MLflow: the table in every format, its trials, figures."""
    files: dict[str, str | bytes] = {"grok_table.md": render(table, "md"),
                                     "grok_table.csv": render(table, "csv"),
                                     "grok_table.tex": render(table, "latex"),
                                     "grok_table.txt": render(table, "text"),
                                     "trials.csv": trials.to_csv(index=False)}
    files.update({name: Path(path).read_bytes() for name, path in (figures or {}).items()})
    return files


def sweep_runs(runs: pd.DataFrame, experiment: str, sweep: str | None) -> pd.DataFrame:
    """The trial runs of ``sweep`` (all of them when None); AnalysisError when there are none."""
    if sweep is not None and not runs.empty:
        runs = runs[runs.get(f"tags.{SWEEP_TAG}", pd.Series(dtype=object)) == sweep]
    if runs.empty:
        of = f" of sweep {sweep!r}" if sweep is not None else ""
        raise AnalysisError(f"experiment {experiment!r} has no trial runs{of}")
    return runs.reset_index(drop=True)


# MLflow's limits on a run tag and an experiment tag (characters), less a margin.
RUN_NOTE_LIMIT, EXPERIMENT_NOTE_LIMIT = 7900, 19900


def description(table: pd.DataFrame, title: str, limit: int) -> str:
    """The table in brief Markdown (:func:`render_brief_md`) under a one-line title, rows cut
    (and said so) to fit ``limit``."""
    md = render_brief_md(table)
    lines = md.rstrip("\n").split("\n")
    text = f"{title}\n\n{md}"
    for keep in range(len(lines) - 1, 1, -1):  # header and rule, then as many rows as fit
        if len(text) <= limit:
            break
        cut = len(lines) - keep
        text = (f"{title}\n\n" + "\n".join(lines[:keep]) + f"\n\n({cut} more lines: the "
                "artifact grok_table.md holds the whole table)\n")
    return text


def publish(client, experiment: str, sweep: str | None = None,
            files: dict[str, str | bytes] | None = None, source: str = "") -> str | None:
    """Store the grok table where people look in the MLflow UI.

    * the experiment's description: the table of all its trial runs (Markdown);
    * the sweep's parent run (``sweep``, else the experiment's latest): its description is the
      table of its own trials, and ``files`` (default: :func:`table_files` of that table) its
      artifacts. Without a parent run, ``files`` go to a ``grok_table`` run tagged
      ``run_kind=analysis``.

    Returns the id of the run that holds the files.
    """
    import time

    exp_id = experiment_id(client, experiment)
    runs = load_runs(client, experiment)
    if runs.empty:
        raise AnalysisError(f"experiment {experiment!r} has no trial runs")
    when = f"updated {time.strftime('%Y-%m-%d %H:%M')}" + (f", {source}" if source else "")
    n_sweeps = runs.get(f"tags.{SWEEP_TAG}", pd.Series(dtype=object)).nunique()
    set_description(client, exp_id, None, description(
        build_table(trials_from_runs(runs)),
        f"**Grok table** of the {len(runs)} trial runs of this experiment ({n_sweeps} "
        f"sweep{'s' if n_sweeps != 1 else ''}; {when}). Each sweep's run holds its own table "
        "and the files (Markdown, CSV, LaTeX, trials).", EXPERIMENT_NOTE_LIMIT))
    parent = find_sweep_run(client, exp_id, sweep)
    if parent is None:
        trials = trials_from_runs(runs)
        return log_analysis_run(client, experiment, "grok_table",
                                files or table_files(build_table(trials), trials),
                                tags={"n_trial_runs": str(len(runs))})
    name = parent.data.tags.get(SWEEP_TAG, "")
    mine = sweep_runs(runs, experiment, name)
    trials = trials_from_runs(mine)
    table = build_table(trials)
    set_description(client, exp_id, parent.info.run_id, description(
        table, f"**Grok table** of sweep `{name}` ({len(mine)} trial runs; {when}). Files: "
        "this run's artifacts grok_table.md, .csv, .tex, .txt and trials.csv.", RUN_NOTE_LIMIT))
    log_files(client, parent.info.run_id, files or table_files(table, trials))
    client.set_tag(parent.info.run_id, "grok_table", f"{len(table)} rows; {when}")
    return parent.info.run_id


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise AnalysisError(f"cannot write {path}: {err.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
