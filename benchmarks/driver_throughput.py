"""How many metric rows per second the sweep driver logs to MLflow, and whether trials wait on it.

A synthetic load on real Ray and real MLflow: ``--trials`` concurrent trials of a tiny model at
p = 5 (an evaluation, so a reported row, every epoch) all running at once on a local Ray with
``--cores`` CPUs (fractional CPUs per trial), logged by the driver (``sweeps.tracking``) into a
SQLite store and into an ``mlflow server`` started here on 127.0.0.1 with a SQLite backend (temp
dir). Each store is measured with the writes per row (plain, ``BATCH_SECONDS = 0``) and batched
(fast), alternating.

rows/s: the rows of all trials over the window from the first evaluation to the last trial's
end; ms per report: the time a trial's ``tune.report`` held it up, averaged (a trial waits until
the driver has taken its previous result). The rows a trial of the demo produces per second at
1 thread (about 4: an evaluation every 20 epochs of ~12 ms) divided into the rows/s gives the
number of such trials one driver keeps up with. Trials report every row here
(``GROK_REPORT_EVERY_S=0``): a sweep's trials send the rows of up to a second in one report,
which this load is meant to outrun.

    python benchmarks/driver_throughput.py [--trials 16] [--epochs 200] [--cores 2]
        [--stores sqlite,server] [--modes plain,fast]
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
# Python puts this script's folder first on the path: its sibling sweep_overhead imports as is.
from sweep_overhead import trial_timings  # noqa: E402

from sweeps import row_writer  # noqa: E402

BATCHED_SECONDS = row_writer.batch_seconds()


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n"
                                   + (folder / "server.log").read_text()[-2000:])
            time.sleep(1)


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers only
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def one_load(uri: str, mode: str, args, folder: Path, n: int) -> dict:
    import ray

    from grokcore.config import RunConfig
    from sweeps.runner import Resources, run_sweep

    row_writer.BATCH_SECONDS = 0.0 if mode == "plain" else BATCHED_SECONDS
    base = RunConfig(p=5, frac_train=0.5, d_model=16, d_head=4, n_heads=2, d_mlp=32,
                     epochs=args.epochs, eval_every=1, checkpoint_every=args.epochs,
                     device="cpu", compile="off")
    configs = [base.replace(seed=seed) for seed in range(args.trials)]
    ray.init(address="local", num_cpus=args.cores, include_dashboard=False,
             _temp_dir=tempfile.mkdtemp(prefix="rd", dir="/tmp"), logging_level="WARNING",
             configure_logging=False)
    try:
        result = run_sweep(configs, experiment=f"throughput_{n}", name=f"load_{n}_{mode}",
                           tracking_uri=uri, storage=str(folder / "ray"),
                           resources=Resources(cpus_per_trial=args.cores / args.trials,
                                               gpus_per_trial=0, retries=0),
                           progress_every_s=3600)
    finally:
        ray.shutdown()
    assert all(o.status in ("reached", "not_reached") for o in result.outcomes), result.outcomes
    rows = trial_timings(Path(result.path))
    n_rows = len(rows) * (args.epochs + 1)
    window = max(t["end_started"] for t in rows) - min(t["first_eval"] for t in rows)
    # Every row arrived in MLflow: count train_loss steps of each run.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    logged = sum(len(client.get_metric_history(o.run_id, "train_loss")) for o in result.outcomes)
    return {"rows_per_s": n_rows / window, "report_ms": 1000 * sum(
                t["report_seconds"] for t in rows) / n_rows,
            "lost": n_rows - logged, "window": window}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="concurrent trials")
    parser.add_argument("--epochs", type=int, default=200, help="epochs = rows per trial - 1")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--stores", default="sqlite,server")
    parser.add_argument("--modes", default="plain,fast")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])
    os.environ["GROK_REPORT_EVERY_S"] = "0"  # a report per row; the local Ray's workers inherit it
    print(f"{args.trials} concurrent trials, p=5, a row every epoch, {args.epochs} epochs, "
          f"{args.cores} cores; load average {os.getloadavg()[0]:.2f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="driver_throughput_"))
    server = None
    found: dict[tuple[str, str], dict] = {}
    try:
        n = 0
        for store in args.stores.split(","):
            if store == "server":
                server, uri = start_server(work)
            else:
                uri = f"sqlite:///{work / 'mlflow.db'}"
            for mode in args.modes.split(","):
                n += 1
                stats = one_load(uri, mode, args, work, n)
                found[(store, mode)] = stats
                print(f"{store} {mode}: {stats['rows_per_s']:.0f} rows/s, {stats['report_ms']:.1f}"
                      f" ms per report, {stats['lost']} rows lost, window "
                      f"{stats['window']:.1f} s; load average {os.getloadavg()[0]:.2f}",
                      flush=True)
            if server is not None:
                stop_server(server)
                server = None
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    for (store, mode), stats in found.items():
        print(f"rows/s {store} {mode}: {stats['rows_per_s']:.0f}")
    for store in args.stores.split(","):
        if (store, "plain") in found and (store, "fast") in found:
            print(f"speedup rows/s {store}: "
                  f"{found[(store, 'fast')]['rows_per_s'] / found[(store, 'plain')]['rows_per_s']:.2f}")


if __name__ == "__main__":
    main()
