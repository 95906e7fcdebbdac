"""The grok table in MLflow, where people look: artifacts of the sweep's parent run and the
Markdown table as the descriptions (``mlflow.note.content``) of the experiment and of that run.
``python -m analysis.grok_table`` calls :func:`publish`, and so does a sweep when it ends.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.runs import (AnalysisError, experiment_id, find_sweep_run, log_analysis_run,
                           log_files, load_runs, set_description)
from analysis.table import build_table
from analysis.table_render import render, render_brief_md
from analysis.trials import trials_from_runs
from grokcore.records import SWEEP_TAG


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
