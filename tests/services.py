"""Real services for the tests: PostgreSQL, an MLflow tracking server or UI, headless Chromium.

Each is started by the test on 127.0.0.1 (free ports, its own folders) and stopped by it. Where a
program is missing, ``require_*`` skips with the reason and the install line (`.ci/run` installs
them: Debian's ``postgresql``, ``chromium`` and ``chromium-driver``; ``selenium`` and
``psycopg2-binary`` from the test extra).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"


ROOT = Path(__file__).resolve().parents[1]


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment of a process a test starts (a sweep, a Ray node, a server, a docs build):
    no RAY_* of the caller, this checkout first on PYTHONPATH (the installed package may point at
    another checkout), then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Until ``url`` answers 200 (MLflow's workers take a while to start on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(1)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- PostgreSQL ----------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def require_postgres() -> Path:
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed here (`apt-get install -y postgresql`, as "
                    ".ci/run does)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install -e '.[test]')")
    return bindir


@contextlib.contextmanager
def postgres(user: str = "mlflow", password: str = "mlflow-test", db: str = "mlflow"):
    """A PostgreSQL server on 127.0.0.1 in a data folder of its own; yields its SQLAlchemy URI
    (``postgresql+psycopg2://user:password@127.0.0.1:PORT/db``). As root, the server runs as the
    ``postgres`` user that Debian's package creates (PostgreSQL refuses to run as root)."""
    import psycopg2

    bindir = require_postgres()
    root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, pwfile = root / "data", root / "server.log", root / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    run = dict(check=True, capture_output=True, text=True, cwd=root)
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", user,
                        f"--pwfile={pwfile}", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8"], **run)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                        "-o", options, "-w", "-t", "120", "start"], **run)
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password,
                                    dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
            conn.close()
            # the driver named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (3)
            yield f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{port}/{db}"
        finally:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                            "-w", "stop"], capture_output=True, cwd=root)
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{err.cmd[len(as_user)]} failed: {err.stderr or err.stdout}"
                           + (log.read_text() if log.exists() else "")) from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- MLflow --------------------------------------------------------------------------------------
@contextlib.contextmanager
def mlflow_process(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                   port: int | None = None, shell: bool = False):
    """``mlflow server`` or ``mlflow ui`` (``args``: the command, without host and port) on
    127.0.0.1 and a free port, one worker; yields its base URL."""
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="mlflow-", suffix=".log")[1])
    extra = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command = " ".join([*args, *extra]) if shell else [*args, *extra]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, shell=shell,
                                executable="/bin/bash" if shell else None)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc, log)
        yield url
    finally:
        stop(proc)
        log.unlink(missing_ok=True)


def mlflow_server_args(backend_uri: str, artifacts: Path) -> list[str]:
    """The team server of the README: runs in ``backend_uri`` (PostgreSQL), artifacts in a
    folder the server serves (clients upload and download through it)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
            "--serve-artifacts", "--artifacts-destination", str(artifacts)]


# ---- Chromium ------------------------------------------------------------------------------------
def require_chromium() -> None:
    if not (shutil.which("chromium") and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium is not installed here (`apt-get install -y chromium "
                    "chromium-driver`, as .ci/run does)")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")


@contextlib.contextmanager
def browser(width: int = 1280, height: int = 800):
    """Headless Chromium through the system chromedriver, its viewport width x height."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1,
                                "mobile": False})
        yield driver
    finally:
        driver.quit()
