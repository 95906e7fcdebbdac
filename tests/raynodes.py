"""Real Ray nodes for tests: `ray start --block` child processes, each in its own session, temp
dir and ports, so that a test can stop (or SIGKILL) exactly the node it started and never touches
another Ray on the machine (no `ray stop`)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services import free_port

RAY = Path(sys.executable).parent / "ray"
# The head's GCS notices a node that stopped answering after about 3 s instead of about 30 s.
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                     "RAY_health_check_failure_threshold": "3"}


@dataclasses.dataclass
class RayNode:
    proc: subprocess.Popen
    temp_dir: str
    node_manager_port: int
    port: int | None = None  # the head's GCS port

    @property
    def log(self) -> Path:
        return Path(self.temp_dir) / "node.log"

    def kill(self) -> None:
        """SIGKILL the node's `ray start` and everything in its session (raylet, agents,
        workers that stayed in the group): a machine that vanished."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        """Stop the node (SIGTERM: `ray start --block` stops its node's processes; SIGKILL to
        its session if that takes over a minute) and remove its temp dir."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_node(env: dict[str, str], num_cpus: int, head_address: str | None = None,
               num_gpus: int | None = None) -> RayNode:
    """A head (``head_address`` None) or a node joining ``head_address``, with ``num_cpus`` CPUs
    (and ``num_gpus`` GPUs: Ray's count, whatever the machine has), on free ports, in a new temp
    dir under /tmp; returns once it is up."""
    temp_dir = tempfile.mkdtemp(prefix="rn", dir="/tmp")  # short: Ray's socket paths are long
    node_manager_port = free_port()
    gpus = [] if num_gpus is None else ["--num-gpus", str(num_gpus)]
    args = [str(RAY), "start", "--block", "--num-cpus", str(num_cpus), *gpus,
            "--temp-dir", temp_dir, "--disable-usage-stats",
            "--node-manager-port", str(node_manager_port),
            "--object-manager-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port())]
    port = None
    if head_address is None:
        port = free_port()
        args += ["--head", "--port", str(port), "--include-dashboard", "false"]
    else:
        args += ["--address", head_address]
    log = open(Path(temp_dir) / "node.log", "w")
    proc = subprocess.Popen(args, env={**env, **FAST_HEALTH_CHECK}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    node = RayNode(proc, temp_dir, node_manager_port, port)
    deadline = time.monotonic() + 120
    while "block forever" not in node.log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError("ray start failed:\n" + node.log.read_text())
        time.sleep(0.5)
    return node


NODES_SCRIPT = """
import json, logging, sys, ray
ray.init(address=sys.argv[1], logging_level=logging.WARNING, log_to_driver=False)
print(json.dumps([{"id": n["NodeID"], "alive": n["Alive"], "port": n["NodeManagerPort"],
                   "cpus": n["Resources"].get("CPU", 0)} for n in ray.nodes()]))
"""


def cluster_nodes(address: str, env: dict[str, str]) -> list[dict]:
    """The cluster's nodes as its GCS sees them: id, alive, node manager port, CPUs."""
    done = subprocess.run([sys.executable, "-c", NODES_SCRIPT, address], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


ROOT = Path(__file__).resolve().parents[1]


def read_runs(db: Path) -> list[dict]:
    """The runs of an MLflow SQLite store while its writer runs, read-only and without MLflow
    (whose client would check the schema): run id, status, tags, last train_loss step.
    Empty while the store or its tables do not exist yet or the file is locked."""
    import sqlite3

    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            runs = {r: {"run_id": r, "status": s, "tags": {}, "last_step": None}
                    for r, s in con.execute("SELECT run_uuid, status FROM runs")}
            for r, k, v in con.execute("SELECT run_uuid, key, value FROM tags"):
                if r in runs:
                    runs[r]["tags"][k] = v
            for r, step in con.execute("SELECT run_uuid, MAX(step) FROM metrics "
                                       "WHERE key = 'train_loss' GROUP BY run_uuid"):
                if r in runs:
                    runs[r]["last_step"] = step
        finally:
            con.close()
    except sqlite3.OperationalError:
        return []
    return list(runs.values())
