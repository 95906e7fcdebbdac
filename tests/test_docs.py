"""The documentation site builds strictly (a warning or a broken link fails it), and its generated
pages hold what the code defines: every RunConfig field, every name of grokcore/records.py, every
command's options."""

import dataclasses
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from services import checkout_env

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = str(Path(sys.executable).parent / "mkdocs")


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    # checkout_env: the hooks and the commands whose --help they show import this checkout's
    # code (the mkdocs script's own path does not hold it; the installed package may be another)
    return subprocess.run([MKDOCS, "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, env=checkout_env(),
                          capture_output=True, text=True, timeout=900)


def page_text(site: Path, page: str) -> str:
    """The text of a built page, tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    done = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stderr[-4000:]
    return site


@pytest.fixture(scope="module")
def generate():
    # The hook module as MkDocs loads it: by its path (docs/ is not a package).
    spec = importlib.util.spec_from_file_location("generate", ROOT / "docs/hooks/generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_run_options_page_has_every_field_with_its_help(site):
    from grokcore.config import RunConfig

    text = page_text(site, "reference/run-options")
    for f in dataclasses.fields(RunConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
        # the first words of its help text (the page escapes nothing a reader would see)
        assert " ".join(f.metadata["help"].split()[:3]) in text.replace("\n", " "), f.name
    assert "--frac, --frac-train" in text  # the one alias


def test_every_command_of_the_project_is_on_the_commands_page(generate):
    """A module of grokcore, sweeps or analysis that runs as a command (a ``__main__`` guard,
    or a package's ``__main__.py``) has its --help on the page."""
    shown = {" ".join(argv) for _, argv in generate.COMMANDS}
    for package in ("grokcore", "sweeps", "analysis"):
        for path in sorted((ROOT / package).glob("*.py")):
            if path.name == "__main__.py" or '__name__ == "__main__"' not in path.read_text():
                continue
            as_module = f"-m {package}.{path.stem}"
            assert as_module in shown or f"{package}/{path.name}" in shown, path.name
        if (ROOT / package / "__main__.py").exists():
            assert any(a.startswith(f"-m {package}") for a in shown), package


def test_the_commands_page_is_each_commands_help(site, generate):
    text = page_text(site, "reference/commands")
    assert text.count("usage:") == len(generate.COMMANDS)  # one --help each
    for title, _ in generate.COMMANDS:
        assert title in text, title
    # a sweep option and a grok_table option, as --help prints them
    assert "--gpus-per-trial" in text and "--plot-km" in text and "--pairwise" in text


def test_the_mlflow_layout_names_every_constant_of_records(site):
    import grokcore.records as records

    text = page_text(site, "reference/mlflow-layout")
    constants = [n for n in vars(records) if n.isupper() and isinstance(getattr(records, n), str)]
    assert "RUN_KIND_TAG" in constants and "CHECKPOINT_FILE" in constants
    for name in constants:
        assert name in text and getattr(records, name) in text, name


def test_record_names_takes_the_comments_beside_and_above_each_name(generate):
    table = generate.record_names()
    row = next(line for line in table.splitlines() if line.startswith("| `TRIAL_KEY_TAG`"))
    assert "stable per sweep and settings" in row  # the comment on its line
    row = next(line for line in table.splitlines() if line.startswith("| `DONE_STATUSES`"))
    assert "How a trial ended" in row and "`reached`, `not_reached`, `diverged`" in row
    # the comment beside one name is not the comment of the name below it
    row = next(line for line in table.splitlines() if line.startswith("| `SWEEP_TAG`"))
    assert "the sweep's name" in row and "stable per sweep" not in row
    # a name without a comment of its own takes the comment that opens its group of lines
    row = next(line for line in table.splitlines() if line.startswith("| `DESCRIPTION_TAG`"))
    assert "MLflow's own tags" in row


def test_table1_page_is_the_committed_table(site):
    text = page_text(site, "results/table1")
    committed = (ROOT / "results/table1/table1.md").read_text()
    assert committed.count("\n| expmod |") == 15
    assert "4900 [4200, -)" in committed and "4900 [4200, -)" in text
    assert (site / "results/table1/grok_km.png").read_bytes() == (
        ROOT / "results/table1/grok_km.png").read_bytes()


def test_a_broken_link_or_an_unknown_generator_fails_the_strict_build(tmp_path, generate):
    # The strict build of a one-page site with a link to a page that does not exist.
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\ntheme:\n  name: material\nstrict: true\n")
    done = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 1 and "missing.md" in done.stderr, done.stderr
    # A page asking for a part that no generator makes.
    (tmp_path / "docs" / "index.md").write_text("# Home\n\n<!-- generated: no_such_part -->\n")
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\ntheme:\n  name: material\nstrict: true\n"
        f"hooks:\n  - {ROOT / 'docs/hooks/generate.py'}\n")
    done = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 1 and "no_such_part" in done.stderr, done.stderr


@pytest.mark.parametrize("readme", sorted(p.name for p in ROOT.glob("README*.md")))
def test_the_readmes_links_point_at_files_that_exist(readme):
    path = ROOT / readme
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [t for t in targets if "://" not in t]
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"{readme} links to files that do not exist: {missing}"
