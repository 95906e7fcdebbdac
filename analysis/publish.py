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
from analysis.table_render import headline, render, render_brief_md
from analysis.trials import trials_from_runs, with_current_names
from grokcore.records import SWEEP_TAG, TRIALS_FIGURE
from grokcore.values import number


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
    """The table's :func:`headline` (the line the MLflow UI shows before the description is
    expanded), a title, then the table in brief Markdown (:func:`render_brief_md`), rows cut
    (and said so) to fit ``limit``."""
    line = headline(table)
    line = line if len(line) <= 1500 else line[:1500].rpartition(" · ")[0] + " · ..."
    title = f"**Grok table**: {line}\n\n{title}"
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
        f"The grok table of the {len(runs)} trial runs of this experiment ({n_sweeps} "
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
        table, f"The grok table of sweep `{name}` ({len(mine)} trial runs; {when}). Files: "
        "this run's artifacts grok_table.md, .csv, .tex, .txt and trials.csv.", RUN_NOTE_LIMIT))
    log_files(client, parent.info.run_id, files or table_files(table, trials))
    log_trials_figure(client, parent.info.run_id, mine)
    client.set_tag(parent.info.run_id, "grok_table", f"{len(table)} rows; {when}")
    return parent.info.run_id


def log_trials_figure(client, run_id: str, runs: pd.DataFrame) -> None:
    """The sweep's trials on one plot (``analysis.figures_sweep``) as the run's artifact
    ``TRIALS_FIGURE.png`` and as its image of that key, which MLflow's chart view shows."""
    import tempfile

    from PIL import Image

    from analysis.figures_sweep import MAX_TRIALS, plot_trials_compared

    runs = with_current_names(runs)
    names = runs.get("tags.mlflow.runName", pd.Series("", index=runs.index)).fillna("")
    shown = runs.assign(name=names).sort_values("name").head(MAX_TRIALS)
    trials = [{"name": row["name"], "color": _text(row.get("tags.mlflow.runColor")),
               "outcome": _text(row.get("tags.outcome")),
               "threshold_epoch": number(row.get("tags.threshold_epoch")),
               "test_acc": _history(client, row["run_id"], "test_acc"),
               "unseen": _history(client, row["run_id"], "test_acc_unseen")}
              for row in shown.to_dict("records")]
    given = runs.get("params.grok_acc", pd.Series(dtype=object)).dropna()
    threshold = (number(given.iloc[0]) if len(given) else None) or 0.99
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_trials_compared(trials, f"{tmp}/{TRIALS_FIGURE}.png", threshold, len(runs))
        client.log_artifact(run_id, str(path))
        with Image.open(path) as image:
            client.log_image(run_id, image.convert("RGB"), key=TRIALS_FIGURE, step=0)


def _history(client, run_id: str, key: str) -> tuple[list[int], list[float]]:
    """A metric's (steps, values), in step order."""
    points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
    return [s for s, _ in points], [v for _, v in points]


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and value != value) else str(value)
