"""The parts of the documentation site that are generated when it is built, so they cannot go
stale: the run options from RunConfig's field metadata, every command's ``--help``, the names of
``grokcore/records.py``, the columns of a trials CSV, and the committed Table 1 and its figures.

MkDocs loads this file as a hook (``hooks:`` in mkdocs.yml). A page asks for a generated part
with a marker line ``<!-- generated: NAME -->``, which :func:`on_page_markdown` replaces with
``GENERATORS[NAME]()``; an unknown name fails the build. Figures that live outside ``docs/``
(``results/``) are added to the site by :func:`on_files`, not copied into ``docs/``.
"""

from __future__ import annotations

import ast
import html
import io
import os
import re
import subprocess
import sys
import tokenize
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.M)

# Images kept beside the results they belong to, published at these site paths.
RESULT_FIGURES = {
    "results/table1/grok_km.png": ROOT / "results/table1/grok_km.png",
    "results/table1/grok_heatmap.png": ROOT / "results/table1/grok_heatmap.png",
    "results/table1/hazard_forest.png": ROOT / "results/table1/hazard_forest.png",
    "results/phase/km_by_bijective_a_bijective_b.png":
        ROOT / "results/phase/km_by_bijective_a_bijective_b.png",
    "results/phase/heatmap_p31.png": ROOT / "results/phase/heatmap_p31.png",
    "results/phase/km_by_relative_order.png": ROOT / "results/phase/km_by_relative_order.png",
    "results/phase/km_order_41.png": ROOT / "results/phase/km_order_41.png",
    "results/phase/km_by_frac.png": ROOT / "results/phase/km_by_frac.png",
    "results/cycles_41/km_by_relative_cycles.png":
        ROOT / "results/cycles_41/km_by_relative_cycles.png",
    "results/same_cycles_41/km_by_relative_cycles.png":
        ROOT / "results/same_cycles_41/km_by_relative_cycles.png",
}

# The commands whose --help the Commands page shows, run from the project root.
COMMANDS = (
    ("python -m grokcore train", ["-m", "grokcore", "train"]),
    ("python -m grokcore tasks", ["-m", "grokcore", "tasks"]),
    ("python -m grokcore grid", ["-m", "grokcore", "grid"]),
    ("python sweeps/expmod_grid.py", ["sweeps/expmod_grid.py"]),
    ("python sweeps/primality.py", ["sweeps/primality.py"]),
    ("python sweeps/gcd.py", ["sweeps/gcd.py"]),
    ("python sweeps/sorting.py", ["sweeps/sorting.py"]),
    ("python -m sweeps.search", ["-m", "sweeps.search"]),
    ("python -m sweeps.import_runs", ["-m", "sweeps.import_runs"]),
    ("python -m analysis.grok_table", ["-m", "analysis.grok_table"]),
    ("python -m analysis.hazard", ["-m", "analysis.hazard"]),
    ("python -m analysis.outcomes", ["-m", "analysis.outcomes"]),
    ("python -m analysis.power", ["-m", "analysis.power"]),
    ("python -m analysis.grid_progress", ["-m", "analysis.grid_progress"]),
    ("python -m analysis.inspect", ["-m", "analysis.inspect"]),
    ("python -m analysis.residues", ["-m", "analysis.residues"]),
)

# Table 1's columns shown on the results page (the full table is results/table1/table1.md).
TABLE1_COLUMNS = ("a", "b", "p", "split", "shows", "reached", "KM median [95% CI]", "p (Holm)",
                  "observed", "test acc", "unseen", "leakage", "paper", "95% PI, one run",
                  "paper p (Holm)", "paper vs runs")


# ---- MkDocs events -------------------------------------------------------------------------------
def on_files(files, config):
    for uri, path in RESULT_FIGURES.items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: no generator {name!r} "
                              f"(docs/hooks/generate.py has {', '.join(sorted(GENERATORS))})")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


# ---- the run options, from RunConfig's field metadata --------------------------------------------
def cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def run_options() -> str:
    """One table per section of RunConfig: the option, its type and default, the tasks that read
    it (every task when empty), and its help text, as ``--help`` prints them."""
    from grokcore.config import field_flags, fields_by_section

    out = []
    for title, fields in fields_by_section():
        out += [f"### {title.capitalize()}", "",
                "| option | type | default | tasks | what it sets |", "|---|---|---|---|---|"]
        for f in fields:
            flags = field_flags(f)
            if isinstance(f.default, bool):
                flags = [f"{flag} / --no-{flag[2:]}" for flag in flags]
            names = ", ".join(f"`{flag}`" for flag in flags)
            tasks = ", ".join(f.metadata.get("tasks", ())) or "all"
            out.append(f"| {names} (`{f.name}`) | {type(f.default).__name__} | "
                       f"`{f.default!r}` | {tasks} | {cell(f.metadata['help'])} |")
        out.append("")
    return "\n".join(out)


def task_defaults() -> str:
    """Each task's defaults and each preset, as differences from RunConfig's own defaults."""
    from grokcore.config import RunConfig
    from grokcore.tasks import PRESETS, TASKS, config_for

    plain = RunConfig().to_dict()

    def changes(cfg) -> str:
        diff = {k: v for k, v in cfg.to_dict().items() if k != "task" and v != plain[k]}
        return ", ".join(f"`{k}={v!r}`" for k, v in diff.items()) or "(RunConfig's defaults)"

    out = ["| task | its defaults |", "|---|---|"]
    out += [f"| `{name}` | {changes(config_for(name))} |" for name in TASKS]
    out += ["", "| preset | task | settings on top of the task's defaults |", "|---|---|---|"]
    out += [f"| `{name}` | `{task}` | {', '.join(f'`{k}={v!r}`' for k, v in values.items())} |"
            for name, (task, values) in PRESETS.items()]
    return "\n".join(out)


# ---- every command's --help ----------------------------------------------------------------------
@cache
def _help(args: tuple[str, ...]) -> str:
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args, "--help"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=600)
    if done.returncode != 0:
        raise PluginError(f"`python {' '.join(args)} --help` failed: {done.stderr.strip()}")
    return done.stdout.rstrip()


def commands() -> str:
    with ThreadPoolExecutor(max_workers=4) as pool:  # each --help pays its imports (seconds)
        texts = list(pool.map(lambda c: _help(tuple(c[1])), COMMANDS))
    out = []
    for (title, _), text in zip(COMMANDS, texts):
        out += [f"## `{title}`", "", "```text", text, "```", ""]
    return "\n".join(out)


# ---- the names of grokcore/records.py ------------------------------------------------------------
def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    found = {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}
    return {line: text for line, text in found.items() if not text.startswith("noqa")}  # linters


def _comment_of(node: ast.Assign, lines: list[str], comments: dict[int, str]) -> str:
    """The comment lines right above an assignment and the comment on its line; for a name with
    neither, the comment that opens its group of lines (one comment may describe a few names).
    Section rules (``# ---- ...``) are not comments of a name."""
    def block_above(line: int) -> list[str]:
        found = []
        while lines[line - 1].lstrip().startswith("#") and not comments[line].startswith("----"):
            found.insert(0, comments[line])
            line -= 1
        return found

    own = block_above(node.lineno - 1) + [comments.get(node.end_lineno, "")]
    if any(own):
        return " ".join(own).strip()
    line = node.lineno - 1
    while line > 0 and lines[line - 1].strip() and not lines[line - 1].lstrip().startswith("#"):
        line -= 1  # up through the group's code to the comment that opens it
    return " ".join(block_above(line))


def record_names() -> str:
    """The module's constants (names of end values, tags, artifacts, the tracking URI) with their
    values and the comments written beside or above them in grokcore/records.py."""
    import grokcore.records as records

    source = Path(records.__file__).read_text()
    lines, comments = source.splitlines(), _comments(source)
    out = ["| name | value | what it is |", "|---|---|---|"]
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom):  # names records takes from another module
            names = [a.name for a in node.names if a.name.isupper()]
            if names:
                shown = "; ".join(f"`{n}` = {_shown(getattr(records, n))}" for n in names)
                out.append(f"| {', '.join(f'`{n}`' for n in names)} (from `{node.module}`) | "
                           f"{shown} | {cell(_comment_of(node, lines, comments))} |")
            continue
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()):
            continue
        name = node.targets[0].id
        value = getattr(records, name)
        out.append(f"| `{name}` | {_shown(value)} | {cell(_comment_of(node, lines, comments))} |")
    return "\n".join(out)


def _shown(value) -> str:
    return ", ".join(f"`{v}`" for v in value) if isinstance(value, tuple) else f"`{value}`"


# ---- the columns of a trials CSV ----------------------------------------------------------------
# The trial columns that no group of names in the code describes (analysis/trials.py reads them).
TRIAL_COLUMN_TEXT = {
    "status": "how the trial ended: its tag `status`, else `failed` or `unfinished` (from MLflow's "
              "run status: failed before reporting, or interrupted and not resumed yet)",
    "outcome": "what its test accuracy measured (tag `outcome`); empty for a failed or "
               "unfinished trial",
    "epochs_run": "epochs trained (metric `epochs_run`): where a censored run's time is cut",
    "final_test_acc": "test accuracy at the end (metric `test_acc`, last value)",
    "final_test_acc_unseen": "expmod: accuracy on the unseen-class test pairs at the end "
                             "(metric `test_acc_unseen`)",
    "seconds": "the run's time in seconds (metric `seconds`)",
    "run_name": "the MLflow run's name",
}


def trial_columns() -> str:
    """The columns of a trials CSV beside the task's own (``analysis.trials.TRIAL_COLUMNS``),
    each described by the group of names it belongs to in the code (settings, end values,
    dataset statistics, provenance) or by TRIAL_COLUMN_TEXT."""
    from dataclasses import fields

    from analysis.trials import TASK_STATS, TRIAL_COLUMNS
    from grokcore.config import RunConfig
    from grokcore.provenance import PROVENANCE_FIELDS
    from grokcore.records import END_VALUES
    from grokcore.tasks import TASKS

    with_stats = ", ".join(name for name, task in TASKS.items() if task.trial_stats)

    # provenance first: its `device` (where the run trained) is also a setting (`--device auto`)
    groups = ((TRIAL_COLUMN_TEXT, None),
              (PROVENANCE_FIELDS, "what the run ran with (the run's tag of that name; empty "
                                  "for runs from before it was recorded)"),
              ({f.name for f in fields(RunConfig)}, "a setting (the run's param of that name)"),
              (END_VALUES, "an end value (the run's tag of that name)"),
              (TASK_STATS, f"{with_stats}: a dataset statistic (the run's metric of that name)"))
    out = ["| column | what it is |", "|---|---|"]
    for name in TRIAL_COLUMNS:
        text = next((TRIAL_COLUMN_TEXT.get(name, kind) for names, kind in groups
                     if name in names), "see `analysis/trials.py`")
        out.append(f"| `{name}` | {cell(text)} |")
    return "\n".join(out)


# ---- the committed Table 1 -----------------------------------------------------------------------
def table1() -> str:
    """The committed Table 1 (results/table1/table1.md, built by its make.sh from the committed
    trials.csv), with the columns that the results page discusses."""
    lines = (ROOT / "results/table1/table1.md").read_text().strip().splitlines()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, body = rows[0], rows[2:]
    keep = [header.index(c) for c in TABLE1_COLUMNS if c in header]
    if len(keep) < 4:
        raise PluginError(f"results/table1/table1.md has few of the columns {TABLE1_COLUMNS}: "
                          "update TABLE1_COLUMNS in docs/hooks/generate.py")
    out = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    out += ["| " + " | ".join(row[i] for i in keep) + " |" for row in body]
    return "\n".join(out)


GENERATORS = {"run_options": run_options, "task_defaults": task_defaults, "commands": commands,
              "record_names": record_names, "trial_columns": trial_columns, "table1": table1}
