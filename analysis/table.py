"""The grok table: trials (``analysis.trials``) to one row per configuration, with censored
statistics (``analysis.stats``), what the row shows, the task's own columns (``table_columns``:
expmod's unseen-class accuracy and dataset statistics) and, where the seed paper has a figure,
the paper's figure tested against the row's runs. See ``analysis.grok_table`` for what each
column means.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from analysis import stats
from analysis.logrank import stratified_logrank
from analysis.lognormal import NewRunTest, new_run_test
from analysis.runs import AnalysisError
from analysis.trials import TASK_STATS, param_value, config_keys, task_columns, task_metrics
from grokcore.provenance import PROVENANCE_FIELDS
from grokcore.records import REACHED
from grokcore.tasks import TASKS


DATA = Path(__file__).parent / "data"  # the seed paper's figures (``TaskBase.paper_figures``)


SHOWS = {"grokked": "grokking", "no_delay": "no delay", "lookup": "lookup",
         "not_generalized": "none", "diverged": "diverged"}


def has_paper(task: str) -> bool:
    """Whether the seed paper has figures of ``task`` (its ``paper_figures``)."""
    return task in TASKS and TASKS[task].paper_figures is not None


def seed_table(task: str) -> pd.DataFrame:
    """The seed paper's figures of ``task`` (one that ``has_paper``)."""
    return pd.read_csv(DATA / TASKS[task].paper_figures)


def paper_figure(seed: pd.DataFrame, task: str, key: dict) -> str:
    """The seed paper's single-run grok epoch of the row ``key`` (its settings) of a task with
    paper figures ``seed``; "" where the paper has none, including every row split otherwise
    than the paper's own way (the task's ``paper_split``; "none": trials from before the split
    was a setting)."""
    spec = TASKS[task]
    if key.get("split", spec.paper_split) not in (spec.paper_split, "none"):
        return ""
    hit = seed
    for name in spec.table_keys:
        hit = hit[hit[name] == key[name]]
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


def _row_columns(task: str, group: pd.DataFrame, key: dict, seed: pd.DataFrame | None) -> dict:
    """The columns beside the survival statistics: outcomes, medians, the task's own columns,
    the paper's figure (``seed``: the paper's figures of the task, None where it has none), the
    end values of ``table_metrics``."""
    reached = group[group.status == REACHED]
    row = {"shows": shows(group),
           "memorization_epoch_median": _median(group.memorization_epoch),
           "threshold_delay_median": _median(reached.threshold_delay),
           "spikes": int(group.n_spikes.fillna(0).sum()),
           "test_acc_median": _median(group.final_test_acc),
           "provenance_mixed": mixed_provenance(group)}
    for col in task_columns(task):
        if col.source is not None:
            row[col.name] = AGGREGATES[col.how](group[col.source])
    if seed is not None:
        row["paper_grok_epoch"] = paper_figure(seed, task, key)
    for name in task_metrics(task):
        row[f"final_{name}"] = _median(group[name])
    return row


def build_table(trials: pd.DataFrame, reference: Sequence[Any] | None = None) -> pd.DataFrame:
    """One row per configuration (``config_keys``), tasks in turn; see the module doc.

    ``reference``: the values of the task's ``table_keys`` naming the log-rank reference row
    (the first row with them); default the first row of each task.
    """
    if trials.empty:
        return pd.DataFrame()
    tables = []
    for task, of_task in trials.groupby("task", sort=True):
        keys = list(config_keys(task))
        of_task = of_task.copy()
        own = [c.source for c in task_columns(task) if c.source]
        for col in ("n_spikes", "memorization_epoch", "threshold_delay", "final_test_acc",
                    "final_test_acc_unseen", *TASK_STATS, *own, *task_metrics(task)):
            if col not in of_task:
                of_task[col] = math.nan
        for col in keys:
            of_task[col] = of_task[col].fillna("none")
        ref = _reference_key(of_task, keys, task, reference)
        try:
            survival = stats.survival_table(of_task, keys, ref)
        except ValueError as err:
            raise AnalysisError(f"{task} trials: {err}") from None
        survival = survival.rename(columns={"threshold_min": "threshold_epoch_min",
                                            "threshold_max": "threshold_epoch_max"})
        names = [tuple(r) for r in survival[keys].itertuples(index=False)]
        survival["reference"] = [name == (ref or names[0]) for name in names]
        groups = stats.group_trials(of_task, keys)
        paper = seed_table(task) if has_paper(task) else None
        extra = [_row_columns(task, groups[tuple(r)], dict(zip(keys, r)), paper)
                 for r in survival[keys].itertuples(index=False)]
        if paper is not None:
            for row, tested in zip(extra, paper_tests(
                    [groups[tuple(r)] for r in survival[keys].itertuples(index=False)],
                    [row["paper_grok_epoch"] for row in extra])):
                row.update(tested)
        tables.append(pd.concat([survival, pd.DataFrame(extra)], axis=1))
    return pd.concat(tables, ignore_index=True)


PAPER_COLUMNS = ("paper_pi_low", "paper_pi_high", "paper_p", "paper_p_holm", "paper_vs_runs")
PAPER_ALPHA = 0.05  # a paper figure is "outside" a row's runs when its Holm p is below this


def paper_tests(groups: list[pd.DataFrame], papers: list[str]) -> list[dict]:
    """Each row's paper figure tested as one new run of the row (``analysis.lognormal``): the
    95% prediction interval from the row's runs, the two-sided p of the paper's figure, that p
    Holm-corrected over the rows tested, and in words (``paper_vs_runs``): ``inside``,
    ``above`` / ``below`` (outside the 95% interval), ``above (Holm)`` / ``below (Holm)``
    (outside even after Holm over the rows: Holm p < PAPER_ALPHA), ``not testable: why``, or
    "" where the paper has no figure."""
    tests = []
    for group, paper in zip(groups, papers):
        value = float(paper) if paper not in ("", "no grok") else None
        test = new_run_test(*stats.run_times(group), value)
        tests.append(test if value is not None else
                     NewRunTest(test.low, test.high, None, "",
                                "the paper's run did not grok" if paper else ""))
    rows = []
    for paper, test, p_holm in zip(papers, tests, stats.holm([t.p for t in tests])):
        if test.p is not None:
            words = test.side + (" (Holm)" if p_holm < PAPER_ALPHA else "")
        else:
            words = f"not testable: {test.reason}" if paper else ""
        rows.append(dict(zip(PAPER_COLUMNS, (test.low, test.high, test.p, p_holm, words))))
    return rows


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
    return str(param_value(value)) == str(param_value(wanted))


def _one_task(trials: pd.DataFrame, option: str) -> str:
    tasks = sorted(set(trials.task))
    if len(tasks) != 1:
        raise AnalysisError(f"{option} needs the trials of one task; these have {tasks}")
    return tasks[0]


def pairwise(trials: pd.DataFrame, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Log-rank p of every pair of the chosen rows (each given by the values of the task's
    table_keys, e.g. a, b, p), Holm-corrected over the pairs; the rows must belong to one task."""
    task = _one_task(trials, "--pairwise")
    keys = list(config_keys(task))
    chosen = [_reference_key(trials, keys, task, r) for r in rows]
    try:
        return stats.pairwise_logrank(trials, keys, chosen)
    except ValueError as err:
        raise AnalysisError(str(err)) from None


def compare_by(trials: pd.DataFrame, field: str) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    """For every row run with several values of ``field`` (a setting that names rows, e.g. the
    split), the log-rank p between each two of its values, Holm-corrected over all the tests;
    and, for each two values, one pooled test over all the rows run with both: the log-rank
    test stratified by row (``analysis.logrank``), Holm-corrected over the pooled tests.
    Returns the key columns, the per-row tests (columns as ``stats.PAIR_COLUMNS``; the two keys
    of a test differ in ``field`` only) and the pooled tests (POOLED_COLUMNS)."""
    task = _one_task(trials, "--compare")
    keys = list(config_keys(task))
    if field not in keys[1:]:
        raise AnalysisError(f"--compare {field}: {task} rows are named by "
                            f"{', '.join(keys[1:])}; compare one of those")
    at = keys.index(field)
    alike: dict[tuple, list[tuple]] = {}
    for key in stats.group_trials(trials, keys):  # sorted
        alike.setdefault(key[:at] + key[at + 1:], []).append(key)
    pairs = [pair for members in alike.values() for pair in combinations(members, 2)]
    if not pairs:
        raise AnalysisError(f"--compare {field}: no row was run with two values of {field}")
    try:
        return keys, stats.logrank_pairs(trials, keys, pairs), _pooled(trials, keys, at, pairs)
    except ValueError as err:
        raise AnalysisError(str(err)) from None


POOLED_COLUMNS = ("value_i", "value_j", "strata", "observed_i", "expected_i", "z", "p",
                  "p_holm")


def _pooled(trials: pd.DataFrame, keys: list[str], at: int,
            pairs: list[tuple[tuple, tuple]]) -> pd.DataFrame:
    """One stratified log-rank test per two values of the compared field (row i's value is
    group a: a negative z means its runs reached the threshold later than no difference would have
    them)."""
    groups = stats.group_trials(trials, keys)
    by_values: dict[tuple, list] = {}
    for key_i, key_j in pairs:
        by_values.setdefault((key_i[at], key_j[at]), []).append(
            (*stats.run_times(groups[key_i]), *stats.run_times(groups[key_j])))
    tests = {values: stratified_logrank(strata) for values, strata in by_values.items()}
    adjusted = stats.holm([t.p for t in tests.values()])
    rows = [{"value_i": vi, "value_j": vj, "strata": t.strata, "observed_i": t.observed,
             "expected_i": t.expected, "z": t.z, "p": t.p, "p_holm": h}
            for ((vi, vj), t), h in zip(tests.items(), adjusted)]
    return pd.DataFrame(rows, columns=list(POOLED_COLUMNS)).astype(
        {"z": float, "p": float, "p_holm": float})


def mixed_provenance(group: pd.DataFrame) -> str:
    """The provenance fields (``grokcore.provenance``) whose values differ among a row's trials,
    e.g. ``compiled on|off; code_commit 2 values``; "" when its runs ran alike (or trials from
    before provenance was recorded say nothing)."""
    parts = []
    for name in PROVENANCE_FIELDS:
        if name not in group:
            continue
        values = sorted({v for cell in group[name].dropna().astype(str) for v in cell.split("|")})
        if len(values) > 1:
            shown = "|".join(values) if name not in ("code_commit",) else f"{len(values)} values"
            parts.append(f"{name} {shown}")
    return "; ".join(parts)


def _median(values: pd.Series):
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def _mean(values: pd.Series):
    return values.mean() if values.notna().any() else None


def _flag(values: pd.Series):
    values = values.dropna()
    return bool(values.iloc[0]) if len(values) else None


# How a task's own column (``TableColumn.how``) sums up a row's runs.
AGGREGATES = {"median": _median, "mean": _mean, "first": _flag}
