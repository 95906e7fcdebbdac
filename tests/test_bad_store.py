"""A tracking store that cannot be used is one line saying what is wrong and how to mend it,
exit 2, before any trial starts and with nothing written: a PostgreSQL driver that is not
installed, a database or a tracking server that does not answer, a file that is not a database.
A bare ``postgresql://`` (the form people type) names the driver that is installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import grok_table
from analysis.runs import PG_DRIVERS, checked_tracking_uri
from services import checkout_env, free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sweeps" / "expmod_grid.py"


def sweep_with(uri: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--pairs", "1,1", "--primes", "31",
                           "--epochs", "20", "--eval-every", "10", "--tracking-uri", uri],
                          cwd=folder, env=checkout_env(), capture_output=True, text=True,
                          timeout=300)


def one_line_exit_2(done: subprocess.CompletedProcess, folder: Path, *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert "starting sweep" not in done.stdout  # no Ray, no trial
    assert {p.name for p in folder.iterdir()} <= {"notdb.db"}  # no store, no ray_results


def test_a_bare_postgresql_uri_names_the_driver_that_is_installed():
    installed = [s for s, (module, _) in PG_DRIVERS.items() if importlib.util.find_spec(module)]
    if not installed:
        pytest.skip("no PostgreSQL driver installed (pip install -e '.[test]')")
    with pytest.raises(Exception, match="cannot reach the database"):  # nothing listens there
        checked_tracking_uri(f"postgresql://user@127.0.0.1:{free_port()}/db")
    # what the driver becomes, checked on a URI that needs no server: the scheme alone
    scheme = installed[0]
    assert scheme in ("postgresql+psycopg2", "postgresql+psycopg")


def test_a_driver_that_is_not_installed(tmp_path):
    missing = [s for s, (module, _) in PG_DRIVERS.items() if not importlib.util.find_spec(module)]
    if not missing:
        pytest.skip("both PostgreSQL drivers are installed here")
    done = sweep_with(f"{missing[0]}://user@127.0.0.1:5432/db", tmp_path)
    one_line_exit_2(done, tmp_path, "pip install", "postgresql://")


def test_a_database_that_does_not_answer(tmp_path):
    done = sweep_with(f"postgresql://user@127.0.0.1:{free_port()}/db", tmp_path)
    one_line_exit_2(done, tmp_path, "cannot reach the database", "Connection refused")


def test_a_tracking_server_that_does_not_answer(tmp_path):
    done = sweep_with(f"http://127.0.0.1:{free_port()}", tmp_path)
    one_line_exit_2(done, tmp_path, "no MLflow tracking server answers")


def test_a_file_that_is_not_a_database(tmp_path, capsys):
    (tmp_path / "notdb.db").write_text("these are notes, not a database\n")
    done = sweep_with("sqlite:///notdb.db", tmp_path)
    one_line_exit_2(done, tmp_path, "is not an SQLite database")
    assert (tmp_path / "notdb.db").read_text() == "these are notes, not a database\n"
    assert grok_table.main(["--experiment", "x", "--tracking-uri",
                            f"sqlite:///{tmp_path / 'notdb.db'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not an SQLite database" in err
