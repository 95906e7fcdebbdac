"""A sweep in MLflow: its parent run, the tables in the descriptions, and how to look at it.

Every sweep (a grid or a search) is one *parent run* (tags ``run_kind=sweep``, ``sweep=NAME``,
named after the sweep); each trial is a child run of it (tag ``mlflow.parentRunId``), so the
MLflow UI lists the trials under their sweep. The parent holds what describes the sweep as a
whole: the command line (tag ``command``), the settings every trial shares (params), the grid
(``grid.json``, ``grid.txt``) or the search space (``search.json``), the trial counts (metrics
``n_trials`` and one count per outcome, ``n_grokked``, ``n_no_delay``, ``n_lookup``, ... at
step 0), and the analysis: the grok table
(``grok_table.md/.csv/.tex/.txt``, ``trials.csv``, figures) and, as its description, the table in
Markdown. ``--resume`` reopens the same parent run (found by the sweep's name).

The driver is the only writer (as for the trials). Imports MLflow; not imported by --help.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from grokcore.config import RunConfig, fields_only_other_tasks_read
from grokcore.records import DEFAULT_TRACKING_URI, RUN_KIND_TAG, SWEEP_RUN_KIND, SWEEP_TAG
from grokcore.signals import OUTCOMES
from sweeps.console import format_grid, one_line
from sweeps.grid import varying_fields
from sweeps.mlflow_view import RUN_COLOR_TAG, SWEEP_COLOR, VIEW_KEY, store_view
from sweeps.run_names import run_name, task_params
from analysis.runs import find_sweep_run

# The experiment opens on the runs view (MLflow 3 would show its GenAI overview otherwise).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# The parent's counts: one per outcome (grokcore.signals.OUTCOMES), and the trials that ended
# without one (failed after their retries, or interrupted).
COUNTED = (*OUTCOMES, "failed", "unfinished")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that started this process, as a shell would read it."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith("__main__.py"):  # python -m PACKAGE
        argv[0] = "-m " + Path(argv[0]).parent.name
    return "python " + " ".join(argv[:1] + [shlex.quote(a) for a in argv[1:]])


def shared_params(configs: Sequence[RunConfig], searched: Sequence[str] = ()) -> dict[str, str]:
    """The settings every trial shares, the fields their task reads (the parent's params)."""
    if not configs:
        return {}
    skip = set(varying_fields(configs)) | set(searched)
    skip |= fields_only_other_tasks_read({c.task for c in configs})
    return {k: v for k, v in task_params(configs[0]).items() if k not in skip}


def open_sweep_run(client, experiment_id: str, sweep: str, *, configs: Sequence[RunConfig] = (),
                   search: Mapping[str, Any] | None = None, command: str = "") -> str:
    """The sweep's parent run, created with its description of the sweep, or found again
    (``--resume``); it is RUNNING until :func:`close_sweep_run`. ``configs``: the grid, or for
    a search its base run; ``search``: what the search varies (``searched``: field names,
    ``num_samples``, anything else JSON can hold)."""
    from mlflow.entities import Metric, Param

    setup_experiment(client, experiment_id, configs[0].task if configs else "expmod")
    run = find_sweep_run(client, experiment_id, sweep)
    if run is not None:
        run_id = run.info.run_id
        client.update_run(run_id, status="RUNNING")
        if command:
            client.set_tag(run_id, "last_command", command[:5000])
        return run_id
    tags = {RUN_KIND_TAG: SWEEP_RUN_KIND, SWEEP_TAG: sweep, "command": command[:5000],
            "sweep_type": "search" if search is not None else "grid",
            RUN_COLOR_TAG: SWEEP_COLOR}
    run_id = client.create_run(experiment_id, run_name=sweep, tags=tags).info.run_id
    if search is not None:
        params = shared_params(configs[:1], searched=list(search.get("searched", ())))
        files = {"search.json": json.dumps({"base": configs[0].to_dict(), **search}, indent=2,
                                           default=str)}
        n_trials = int(search.get("num_samples", 0))
    else:
        params = shared_params(configs)
        files = {"grid.json": json.dumps([c.to_dict() for c in configs], indent=1),
                 "grid.txt": format_grid(configs) + "\n"}
        n_trials = len(configs)
        client.set_tag(run_id, "grid", ", ".join(varying_fields(configs)) or "one setting")
    client.log_batch(run_id, metrics=[Metric("n_trials", n_trials, 0, 0)],
                     params=[Param(k, v) for k, v in params.items()])
    from analysis.runs import log_files

    log_files(client, run_id, files)
    return run_id


def close_sweep_run(client, run_id: str, outcomes: Sequence[Any]) -> dict[str, int]:
    """Record the trials' counts by outcome (:data:`COUNTED`); FINISHED, or KILLED while trials
    are unfinished."""
    import time

    from mlflow.entities import Metric

    counts = Counter(outcome_word(o) for o in outcomes)
    now = int(time.time() * 1000)
    numbers = {"n_trials": len(outcomes), **{f"n_{s}": counts.get(s, 0) for s in COUNTED}}
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in numbers.items()])
    client.set_tag(run_id, "counts", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    client.set_terminated(run_id, "KILLED" if counts.get("unfinished") else "FINISHED")
    return numbers


def outcome_word(outcome: Any) -> str:
    """A trial's outcome (grokked, no_delay, lookup, ...), or its status when it has none
    (failed, unfinished)."""
    return getattr(outcome, "outcome", None) or getattr(outcome, "status", "?")


def setup_experiment(client, experiment_id: str, task: str = "expmod") -> None:
    """Open the experiment on its runs (not MLflow 3's GenAI overview; a kind set by hand is
    kept), and store the saved view (``sweeps.mlflow_view``: the trials as rows, their main
    columns, the chart view) that :func:`runs_url` links to."""
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    store_view(client, experiment_id, task)


def publish_table(tracking_uri: str, experiment: str, sweep: str) -> str | None:
    """After a sweep: the grok table as the descriptions of the experiment and of the sweep's
    parent run, and its files as the parent's artifacts. Returns None, or a one-line reason why
    there is no table (the sweep itself is not affected)."""
    try:
        from analysis.publish import publish
        from analysis.runs import AnalysisError, client_for

        publish(client_for(tracking_uri), experiment, sweep=sweep,
                source="written at the end of the sweep")
    except AnalysisError as err:
        return str(err)
    except Exception as err:  # the sweep's trials are recorded; a table is a convenience
        return f"{type(err).__name__}: {one_line(err)}"
    return None


# ---- looking at it ------------------------------------------------------------------------------
def _shown_path(path: str | Path) -> str:
    """A path as a plain shell in the working directory finds it: relative when it is under
    the working directory (``.venv/bin/mlflow``, ``mlflow.db``), else absolute."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _program(path: Path) -> str:
    shown = _shown_path(path)
    return shlex.quote(shown if "/" in shown else f"./{shown}")


def mlflow_command() -> str:
    """This environment's own ``mlflow`` (beside the running Python), or ``python -m mlflow``."""
    exe = Path(sys.executable).parent / "mlflow"
    if exe.is_file() and os.access(exe, os.X_OK):
        return _program(exe)
    return f"{python_command()} -m mlflow"


def python_command() -> str:
    """The running Python, as a plain shell in the working directory finds it."""
    return _program(Path(sys.executable))


def shown_uri(tracking_uri: str) -> str:
    """The tracking URI as the commands print it: a SQLite file relative to the working
    directory when it is under it."""
    if tracking_uri.startswith("sqlite:///"):
        return "sqlite:///" + _shown_path(tracking_uri[len("sqlite:///"):])
    return tracking_uri


def ui_command(tracking_uri: str, port: int = 5000) -> str | None:
    """The command that starts the MLflow UI on this store (None for a tracking server)."""
    if tracking_uri.startswith(("http://", "https://")):
        return None
    port_arg = f" --port {port}" if port != 5000 else ""
    return f"{mlflow_command()} ui --backend-store-uri {shlex.quote(shown_uri(tracking_uri))}" \
        f"{port_arg}"


def go_further(tracking_uri: str, experiment: str, experiment_id: str,
               outcomes: Sequence[Any]) -> list[str]:
    """What a finished sweep prints last: the MLflow UI (its command and the page to open), the
    grok table, and one trial's figures and files (the grid's first grokked trial, else its
    first no_delay or lookup one, else its first), each a line to paste into a plain shell in
    the working directory."""
    uri = shown_uri(tracking_uri)
    store = "" if uri == DEFAULT_TRACKING_URI else f" --tracking-uri {shlex.quote(uri)}"
    lines = ["Go further (paste a command into a shell in this folder):"]
    command = ui_command(tracking_uri)
    if command:
        lines += [f"  the MLflow UI, then open {runs_url(tracking_uri, experiment_id)}",
                  f"    {command}"]
    else:
        lines += [f"  the MLflow UI: open {runs_url(tracking_uri, experiment_id)}"]
    lines += ["  the grok table (a row per setting, with censored statistics):",
              f"    {python_command()} -m analysis.grok_table --experiment "
              f"{shlex.quote(experiment)}{store}"]
    ran = [o for o in outcomes if getattr(o, "run_id", None)]
    pick = next((o for word in ("grokked", "no_delay", "lookup") for o in ran
                 if o.outcome == word), ran[0] if ran else None)
    if pick is not None:
        name = run_name(pick.config) if pick.config is not None else pick.run_id
        folder = "figures_" + "".join(c if c.isalnum() else "_" for c in name.split()[0])
        lines += [f"  one trial's figures and files ({name}: {outcome_word(pick)}) into "
                  f"./{folder}:",
                  f"    MLFLOW_TRACKING_URI={shlex.quote(uri)} {mlflow_command()} artifacts "
                  f"download --run-id {pick.run_id} --dst-path {folder}"]
    return lines


def runs_url(tracking_uri: str, experiment_id: str, port: int = 5000, view: bool = True) -> str:
    """The URL of the experiment's runs view (the UI's "Model training" side, not its GenAI
    overview) with the saved view of its columns, on the tracking server or on the UI that
    :func:`ui_command` starts."""
    base = (tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://"))
            else f"http://127.0.0.1:{port}")
    query = "?workflowType=machine_learning" + (f"&viewStateShareKey={VIEW_KEY}" if view else "")
    return f"{base}/#/experiments/{experiment_id}/runs{query}"
