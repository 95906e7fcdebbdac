"""The committed results rebuild from their committed trials CSV, byte for byte.

Each ``results/NAME/make.sh`` first reads its MLflow store into ``trials.csv`` and then builds
every table from that CSV alone; ``NO_MLFLOW=1`` runs only the second part. Here it runs into a
temporary folder, and every text file it writes must equal the committed one (figures are
compared by their presence: their bytes depend on matplotlib's version).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILT = sorted(p.parent for p in (ROOT / "results").glob("*/make.sh")
               if (p.parent / "trials.csv").exists())


@pytest.mark.parametrize("folder", BUILT, ids=[p.name for p in BUILT])
def test_committed_tables_rebuild_from_the_trials_csv(folder, tmp_path):
    shutil.copy(folder / "trials.csv", tmp_path / "trials.csv")
    env = {**os.environ, "NO_MLFLOW": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(folder / "make.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    written = {p.name for p in tmp_path.iterdir()} - {"trials.csv"}
    texts = sorted(n for n in written if not n.endswith(".png"))
    assert texts, "make.sh wrote no table"
    for name in texts:
        committed = folder / name
        assert committed.exists(), f"{name} is built by make.sh but not committed"
        assert (tmp_path / name).read_text() == committed.read_text(), f"{folder.name}/{name}"
    for name in sorted(n for n in written if n.endswith(".png")):
        assert (folder / name).exists(), f"{name} is drawn by make.sh but not committed"
