"""The layers of ARCHITECTURE.md, enforced: grokcore imports neither sweeps nor analysis, and
analysis does not import sweeps (import-linter's contracts in pyproject.toml, function-level
imports included)."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the packages under cwd, not the installed ones
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_contracts_are_the_layers():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = {(c["source_modules"][0], m) for c in contracts["contracts"]
                 for m in c["forbidden_modules"]}
    assert forbidden == {("grokcore", "sweeps"), ("grokcore", "analysis"), ("analysis", "sweeps")}


def test_the_packages_keep_their_layers():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout, done.stdout


def test_a_function_level_import_against_the_layers_is_caught(tmp_path):
    # The same contracts over three stand-in packages, where grokcore imports analysis inside a
    # function (as grokcore.records once did to draw a run's figures): the check must fail.
    contracts = (ROOT / "pyproject.toml").read_text().split("[tool.importlinter]", 1)[1]
    (tmp_path / "pyproject.toml").write_text("[tool.importlinter]" + contracts)
    for package in ("grokcore", "analysis", "sweeps"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "analysis" / "figures.py").write_text("def draw():\n    pass\n")
    (tmp_path / "grokcore" / "records.py").write_text(
        "def write():\n    from analysis.figures import draw\n\n    draw()\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "grokcore.records -> analysis.figures" in done.stdout, done.stdout
    assert "Contracts: 1 kept, 1 broken." in done.stdout, done.stdout
