"""Reading a sweep back from MLflow: trial runs as one DataFrame, their artifacts, their models.

The layout is the contract written by the sweeps (README, "MLflow layout"; the names are
``grokcore.records``): one run per trial, params = every RunConfig field (strings), tags
``status``, ``reached``, ``threshold_epoch``, ``memorization_epoch``, ``threshold_delay``,
``n_spikes`` (``records.END_VALUES``; strings, "none" when absent), numeric end metrics, per-epoch
metric histories and the artifacts ``history.csv``, ``model.pt``, ``config.json``. Runs that are not
trials carry the tag ``records.RUN_KIND_TAG`` ("analysis": the tables and figures written here;
"search_summary": a search's summary; "sweep": a sweep's parent run) and are skipped here, as are
runs without a ``task`` param (anything else).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from grokcore.records import (CONFIG_FILE, DESCRIPTION_TAG, DONE_STATUSES, HISTORY_FILE,
                              RUN_KIND_TAG, SWEEP_RUN_KIND, SWEEP_TAG, WEIGHTS_FILE,
                              current_status)


class AnalysisError(Exception):
    """Bad input to an analysis command; the message is one line for the user."""


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# SQLAlchemy's PostgreSQL drivers: the module each URI scheme needs and the package that has it.
PG_DRIVERS = {"postgresql+psycopg2": ("psycopg2", "psycopg2-binary"),
              "postgresql+psycopg": ("psycopg", "psycopg[binary]")}


def checked_tracking_uri(uri: str, must_exist: bool = False) -> str:
    """The tracking URI as MLflow should get it, or AnalysisError (one line: what is wrong and
    how to mend it) before anything is written: a bare ``postgresql://`` names the PostgreSQL
    driver that is installed (SQLAlchemy would pick psycopg 3 even where only psycopg2 is), a
    named driver must be installed, the database or server must answer, and a SQLite file must
    be a database (``must_exist``: and be there)."""
    import importlib.util

    scheme = uri.partition("://")[0]
    if scheme == "postgresql":
        found = [s for s, (module, _) in PG_DRIVERS.items() if importlib.util.find_spec(module)]
        if not found:
            raise AnalysisError(f"no PostgreSQL driver for --tracking-uri {scheme}://...: "
                                "pip install psycopg2-binary")
        uri, scheme = found[0] + uri[len("postgresql"):], found[0]
    if scheme in PG_DRIVERS:
        module, package = PG_DRIVERS[scheme]
        if importlib.util.find_spec(module) is None:
            raise AnalysisError(f"--tracking-uri {scheme}://... needs the {module} module: "
                                f"pip install {package!r}, or write postgresql://")
        _reach_database(uri)
    elif scheme == "sqlite":
        _check_sqlite(Path(uri[len("sqlite:///"):]), must_exist)
    elif scheme in ("http", "https"):
        _reach_server(uri)
    return uri


def _reach_database(uri: str) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10})
        with engine.connect():
            pass
    except Exception as err:
        reason = " ".join(str(getattr(err, "orig", None) or err).split())[:200]
        raise AnalysisError(f"cannot reach the database of --tracking-uri (host, port, user, "
                            f"password and database name?): {reason}") from None


def _check_sqlite(path: Path, must_exist: bool) -> None:
    import sqlite3

    if not path.exists():
        if must_exist:
            raise AnalysisError(f"no MLflow store at {path} (--tracking-uri sqlite:///{path})")
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as err:
        raise AnalysisError(f"{path} is not an SQLite database ({err}); give the MLflow store's "
                            "file with --tracking-uri sqlite:///FILE, or a new file's name") from None


def _reach_server(uri: str) -> None:
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=15):
            pass
    except OSError as err:
        reason = getattr(err, "reason", err)
        raise AnalysisError(f"no MLflow tracking server answers at {uri} ({reason}); start it "
                            "(mlflow server ...) or check --tracking-uri") from None


def client_for(tracking_uri: str):
    """An MlflowClient for the URI (:func:`checked_tracking_uri`; a missing SQLite file is an
    error, not a new empty store)."""
    tracking_uri = checked_tracking_uri(tracking_uri, must_exist=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr for errors
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise AnalysisError(f"no MLflow experiment named {name!r}; known: {known}")
    return exp.experiment_id


@contextmanager
def _tracking_uri_of(client):
    """``mlflow.search_runs`` reads the global tracking URI: the client's for the duration."""
    import mlflow

    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None: unset again, as it was


def load_runs(client, experiment: str) -> pd.DataFrame:
    """One row per trial run, as ``mlflow.search_runs`` gives them: ``run_id``, ``status`` (the
    MLflow run status: FINISHED, FAILED, RUNNING, KILLED), ``params.*``, ``tags.*`` (with MLflow's
    own, e.g. ``tags.mlflow.runName``), ``metrics.*`` (end values), ``start_time``, ...

    Runs with a ``run_kind`` tag and runs without a ``task`` param are left out, and so are the
    columns only those runs had: a key a kept run lacks is None (params, tags) or NaN (metrics).
    An experiment without trial runs gives an empty frame.
    """
    import mlflow

    exp_id = experiment_id(client, experiment)
    with _tracking_uri_of(client):
        # max_results=None: every run (MLflow's default stops at 100,000), paged by MLflow
        runs = mlflow.search_runs([exp_id], max_results=None, output_format="pandas")
    # With no runs at all the frame has no params.* / tags.* columns.
    if "params.task" not in runs:
        return pd.DataFrame()
    trial = runs["params.task"].notna()
    if f"tags.{RUN_KIND_TAG}" in runs:
        trial &= runs[f"tags.{RUN_KIND_TAG}"].isna()
    runs = runs[trial].reset_index(drop=True)
    if runs.empty:
        return pd.DataFrame()
    data = [c for c in runs.columns if c.startswith(("params.", "tags.", "metrics."))]
    unused = [c for c in data if runs[c].isna().all()]  # keys no trial has: the others'
    return runs.drop(columns=unused)


def download(client, run_id: str, artifact: str, dst: str | None = None) -> Path:
    dst = dst or tempfile.mkdtemp(prefix="grokcore-")
    try:
        return Path(client.download_artifacts(run_id, artifact, dst))
    except Exception as err:  # MLflow raises several types for a missing artifact
        raise AnalysisError(f"run {run_id} has no artifact {artifact!r} ({type(err).__name__})") from None


def load_config(client, run_id: str):
    """The run's RunConfig, from its config.json artifact (or its params when that is missing)."""
    from grokcore.config import RunConfig
    from grokcore.tasks import validate

    try:
        values = json.loads(download(client, run_id, CONFIG_FILE).read_text())
    except AnalysisError:
        import dataclasses

        params = client.get_run(run_id).data.params
        values = {}
        for f in dataclasses.fields(RunConfig):
            if f.name in params:
                kind = type(f.default)
                raw = params[f.name]
                values[f.name] = (raw.lower() == "true") if kind is bool else kind(raw)
    known = {k: v for k, v in values.items() if k in RunConfig.__dataclass_fields__}
    return validate(RunConfig.from_dict(known))


def load_model(client, run_id: str):
    """(cfg, dataset, model) of a run: its config, its dataset rebuilt, its task's model (the
    decoder-only Transformer, or gcd's encoder-decoder) with its final weights."""
    import torch

    from grokcore.tasks import TASKS, build_dataset

    try:
        client.get_run(run_id)
    except Exception:
        raise AnalysisError(f"no MLflow run with id {run_id!r}") from None
    cfg = load_config(client, run_id)
    dataset = build_dataset(cfg)
    model = TASKS[cfg.task].make_model(cfg, dataset)
    state = torch.load(download(client, run_id, WEIGHTS_FILE), map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return cfg, dataset, model


def load_history(client, run_id: str) -> pd.DataFrame:
    return pd.read_csv(download(client, run_id, HISTORY_FILE))


def find_sweep_run(client, exp_id: str, sweep: str | None = None):
    """A sweep's parent run (tag ``run_kind=sweep``): the one named ``sweep``, or the latest
    started; None when there is none (an experiment written before sweeps had parent runs)."""
    query = f"tags.{RUN_KIND_TAG} = '{SWEEP_RUN_KIND}'"
    if sweep is not None:
        query += f" and tags.{SWEEP_TAG} = '{sweep}'"
    runs = client.search_runs([exp_id], query, max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def set_description(client, exp_id: str, run_id: str | None, text: str) -> None:
    """The Markdown description (``mlflow.note.content``) of a run, or of the experiment when
    ``run_id`` is None, as the UI shows it at the top of its page."""
    if run_id is None:
        client.set_experiment_tag(exp_id, DESCRIPTION_TAG, text)
    else:
        client.set_tag(run_id, DESCRIPTION_TAG, text)


def log_files(client, run_id: str, files: dict[str, str | bytes]) -> None:
    """``files`` (name -> content) as artifacts of the run (replacing files of the same name)."""
    with tempfile.TemporaryDirectory() as tmp:
        for fname, content in files.items():
            path = os.path.join(tmp, fname)
            with open(path, "wb" if isinstance(content, bytes) else "w") as fh:
                fh.write(content)
            client.log_artifact(run_id, path)


def log_analysis_run(client, experiment: str, name: str, files: dict[str, str | bytes],
                     tags: dict[str, str] | None = None) -> str:
    """A run tagged ``run_kind=analysis`` holding ``files`` (name -> content) as artifacts: where
    the analysis goes in an experiment whose sweeps have no parent run (older stores)."""
    exp_id = experiment_id(client, experiment)
    run = client.create_run(exp_id, run_name=name, tags={RUN_KIND_TAG: "analysis", **(tags or {})})
    log_files(client, run.info.run_id, files)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def ended_config_hashes(tracking_uri: str, experiment: str) -> set[str]:
    """The config_hash tags of the experiment's runs that ended (grokcore.records.DONE_STATUSES;
    a status of the old vocabulary read as today's); empty when the store or the experiment
    does not exist yet."""
    try:
        client = client_for(tracking_uri)
    except AnalysisError:  # no store yet
        return set()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return set()
    hashes, token = set(), None
    while True:
        page = client.search_runs([found.experiment_id], "tags.config_hash != ''",
                                  max_results=5000, page_token=token)
        hashes |= {r.data.tags["config_hash"] for r in page
                   if current_status(r.data.tags.get("status")) in DONE_STATUSES}
        token = page.token
        if not token:
            return hashes
