"""Every third-party package that grokcore, sweeps or analysis imports is declared in
pyproject.toml's dependencies, so `pip install .` on a fresh machine gets it (an import that only
works because another package happened to pull it in breaks when that package stops doing so)."""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("grokcore", "sweeps", "analysis")


def top_level_imports(package: Path) -> dict[str, set[str]]:
    """Top-level names of the absolute imports anywhere in the package's files (function-level
    imports too), each with the files that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.relative_to(package.parent)
                                                                .as_posix())
    return found


def third_party_imports() -> dict[str, set[str]]:
    imports: dict[str, set[str]] = {}
    for package in PACKAGES:
        for name, files in top_level_imports(ROOT / package).items():
            if name in sys.stdlib_module_names or name in PACKAGES or name == "__future__":
                continue
            imports.setdefault(name, set()).update(files)
    return imports


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # "ray[tune]>=2.40" -> "ray": the name ends where extras, a version or a marker begin
    return {normalise(re.match(r"[A-Za-z0-9._-]+", dep).group()) for dep in project["dependencies"]}


def test_the_scan_finds_imports_at_any_depth(tmp_path):
    # The scanner itself: module-level, function-level, dotted and from-imports; not relative ones.
    (tmp_path / "mod.py").write_text("import numpy.linalg as la\nfrom . import sibling\n"
                                     "def f():\n    from scipy.stats import ecdf\n"
                                     "    import json, yaml\n")
    assert set(top_level_imports(tmp_path)) == {"numpy", "scipy", "json", "yaml"}


def test_every_third_party_import_is_declared():
    by_import = importlib.metadata.packages_distributions()
    declared = declared_dependencies()
    imports = third_party_imports()
    assert {"torch", "ray", "mlflow", "scipy"} <= set(imports)  # the scan sees the packages' code
    missing = []
    for name, files in sorted(imports.items()):
        distributions = {normalise(d) for d in by_import.get(name, [])}
        assert distributions, f"`import {name}` ({', '.join(sorted(files))}) is not installed"
        if not distributions & declared:  # mlflow is provided by mlflow and mlflow-skinny: either
            missing.append(f"{name} (distribution {' or '.join(sorted(distributions))}; "
                           f"imported by {', '.join(sorted(files))})")
    assert not missing, "imported but not in pyproject.toml's dependencies: " + "; ".join(missing)
