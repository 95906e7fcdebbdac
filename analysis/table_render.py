"""The grok table as text: a 120-column terminal table (settings shared by every row printed
once above it), full Markdown, LaTeX or CSV, the brief Markdown of MLflow descriptions, and the
pairwise tests."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.runs import AnalysisError
from analysis.table import has_paper
from analysis.text_table import format_table
from analysis.trials import config_keys, task_columns, task_metrics
from grokcore.tasks import TASKS


def _int(v) -> str:
    return "-" if v is None or pd.isna(v) else str(int(round(v)))


def _num(v, fmt: str) -> str:
    return "-" if v is None or pd.isna(v) else fmt.format(v)


def _yes(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else ("yes" if v else "no")


def _estimable(r: dict) -> int:
    """The row's runs that enter the estimates (reached or censored)."""
    return int(r["reached"] + r["censored"])


def km_text(r: dict) -> str:
    """The KM median threshold epoch: e.g. ``5000 [3000, 9000]``, ``5000 [3000, -)`` (unbounded
    above), ``not reached`` when fewer than half the runs reached the threshold, ``-`` with no
    estimable run; with one run, its threshold epoch and ``(1 run)``: no interval."""
    estimable = _estimable(r)
    if pd.isna(r["threshold_km_median"]):
        return ("not reached" if estimable else "-") + (" (1 run)" if estimable == 1 else "")
    if estimable == 1:
        return f"{_int(r['threshold_km_median'])} (1 run)"
    high = "-)" if pd.isna(r["threshold_km_ci_high"]) else f"{_int(r['threshold_km_ci_high'])}]"
    return f"{_int(r['threshold_km_median'])} [{_int(r['threshold_km_ci_low'])}, {high}"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pi_text(r: dict) -> str:
    """The 95% prediction interval of one new run's threshold epoch from the row's runs."""
    if _missing(r.get("paper_pi_low")):
        return "-"
    return f"[{_int(r['paper_pi_low'])}, {_int(r['paper_pi_high'])}]"


def _p_text(r: dict) -> str:
    """The log-rank p against the reference row (Holm's in brackets); ``1 run`` where the row
    or the reference has one run only, which no test can tell anything from."""
    if r.get("reference"):
        return "ref." + (" (1 run)" if _estimable(r) == 1 else "")
    if min(_estimable(r), r.get("reference_estimable", 2)) == 1:
        return "1 run"
    return (f"{_num(r['logrank_p'], '{:.2g}')} ({_num(r['logrank_p_holm'], '{:.2g}')})"
            if not pd.isna(r["logrank_p"]) else "-")


def _records(table: pd.DataFrame, task: str) -> list[dict]:
    """One task's rows as dicts, each knowing how many runs its reference row estimates from."""
    rows = table[table.task == task].to_dict("records")
    ref = [_estimable(r) for r in rows if r.get("reference")]
    return [{**r, "reference_estimable": ref[0] if ref else 2} for r in rows]


def columns(task: str, full: bool) -> list[tuple[str, Any]]:
    """(header, cell function of a row dict) for one task's table; ``full``: every column."""
    keys = [k for k in config_keys(task) if k != "task"]
    cols: list[tuple[str, Any]] = [("task", lambda r: str(r["task"]))] if full else []
    cols += [(("frac" if k == "frac_train" else k), (lambda r, k=k: f"{r[k]:g}"
              if k == "frac_train" else str(r[k]))) for k in keys]
    cols += [("shows", lambda r: r["shows"]),
             ("reached", lambda r: f"{r['reached']}/{r['runs']}"),
             ("KM median [95% CI]", km_text),
             ("p (Holm)", _p_text)]
    if full:
        cols += [("observed", lambda r: "-" if pd.isna(r["threshold_epoch_min"]) else
                  f"{_int(r['threshold_epoch_min'])}-{_int(r['threshold_epoch_max'])}"),
                 ("memorized", lambda r: _int(r["memorization_epoch_median"])),
                 ("delay", lambda r: _int(r["threshold_delay_median"])),
                 ("spikes", lambda r: str(r["spikes"])),
                 ("diverged", lambda r: str(r["diverged"])),
                 ("failed", lambda r: str(r["failed"])),
                 ("unfinished", lambda r: str(r["unfinished"])),
                 ("mixes", lambda r: r.get("provenance_mixed") or "-")]
    own = task_columns(task)
    cols += [(c.header, _own_cell(c)) for c in own if c.brief]
    if full:
        cols += [(c.header, _own_cell(c)) for c in own if not c.brief]
    if has_paper(task):
        cols += _paper_columns(full)
    cols += [(f"final {m}", (lambda r, m=m: _num(r[f"final_{m}"], "{:.4g}")))
             for m in task_metrics(task)]
    return cols


def _own_cell(col):
    """The cell function of a task's own column (``TableColumn``), by its ``fmt``."""
    if col.fmt == "int":
        return lambda r: _int(r[col.name])
    if col.fmt == "yes":
        return lambda r: _yes(r[col.name])
    return lambda r: _num(r[col.name], col.fmt)


def _paper_columns(full: bool) -> list[tuple[str, Any]]:
    """The seed paper's figure of a row and how the row's runs see it (``analysis.table.
    paper_tests``); why a figure is not testable is said in the full formats only."""
    cols: list[tuple[str, Any]] = [("paper", lambda r: r["paper_grok_epoch"] or "-")]
    if not full:
        return cols + [("vs runs", lambda r: "-" if not r.get("paper_vs_runs") or
                        r["paper_vs_runs"].startswith("not testable") else r["paper_vs_runs"])]
    return cols + [("95% PI, one run", _pi_text),
                   ("paper p (Holm)", lambda r: "-" if _missing(r.get("paper_p")) else
                    f"{_num(r['paper_p'], '{:.2g}')} ({_num(r['paper_p_holm'], '{:.2g}')})"),
                   ("paper vs runs", lambda r: r.get("paper_vs_runs") or "-")]


def render(table: pd.DataFrame, fmt: str) -> str:
    """The whole table as CSV, or one text / markdown / LaTeX table per task."""
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt not in ("text", "md", "latex"):
        raise AnalysisError(f"unknown format {fmt!r}; choose text, md, csv or latex")
    parts = []
    for task in dict.fromkeys(table.task):
        rows = _records(table, task)
        cols = columns(task, full=fmt != "text")
        cells = [[cell(r) for _, cell in cols] for r in rows]
        head = [h for h, _ in cols]
        if fmt == "md":
            parts.append(_markdown(head, cells))
        elif fmt == "latex":
            parts.append(_latex(head, cells))
        else:
            parts.append(_text(task, head, cells) + LEGEND + _mixes_note(task, rows))
    return "\n".join(parts)


# Under a text table: what its columns count (the outcomes' words: grokcore.signals).
LEGEND = ("reached: runs whose test accuracy held the threshold to the end (lookup too); "
          "KM median: of their threshold epochs,\nthe others censored; shows: grokking "
          "(delayed), no delay, lookup (unseen-class accuracy did not), none\n")


def _mixes_note(task: str, rows: list[dict]) -> str:
    """Below a text table: the rows whose runs ran with different code, torch, device, compiled
    step or threads (their spread may be partly that)."""
    keys = [k for k in config_keys(task) if k != "task"]
    lines = [f"  {', '.join(f'{k} {r[k]}' for k in keys)}: {r['provenance_mixed']}"
             for r in rows if r.get("provenance_mixed")]
    return ("rows whose runs differ in what they ran with:\n" + "\n".join(lines) + "\n"
            if lines else "")


def _shared(head: list[str], rows: list[list[str]]) -> list[int]:
    """The columns with one value in every row (of several), which the brief formats print once
    above the table."""
    return [j for j in range(len(head)) if len(rows) > 1 and len({r[j] for r in rows}) == 1
            and head[j] not in ("shows", "reached", "p (Holm)")]


def render_brief_md(table: pd.DataFrame) -> str:
    """The ``text`` format's columns as Markdown (for descriptions in the MLflow UI): per task,
    a line with the settings every row shares, then a table of the rest."""
    parts = []
    for task in dict.fromkeys(table.task):
        cols = columns(task, full=False)
        head = [h for h, _ in cols]
        rows = [[cell(r) for _, cell in cols] for r in _records(table, task)]
        shared = _shared(head, rows)
        keep = [j for j in range(len(head)) if j not in shared]
        same = ", ".join(f"{head[j]} {rows[0][j]}" for j in shared)
        parts.append(f"**{task}**" + (f" ({same})" if same else "") + "\n\n"
                     + _markdown([head[j] for j in keep], [[r[j] for j in keep] for r in rows]))
    return "\n".join(parts)


def headline(table: pd.DataFrame) -> str:
    """The grok table in one line (the MLflow UI shows a description's first line until it is
    expanded): per row, the keys that differ between rows, what it shows, ``k/n`` reached when it
    has several runs, and its (KM median) threshold epoch, e.g. ``(1,1) grokking at 600 ·
    (4,5) lookup at 300 · (3,4) none``; the keys every row shares once, in front."""
    parts = []
    for task in dict.fromkeys(table.task):
        rows = _records(table, task)
        keys = [k for k in config_keys(task) if k != "task"]
        named = [k for k in keys if len({str(r[k]) for r in rows}) > 1] or keys[:1]
        same = ", ".join(f"{'frac' if k == 'frac_train' else k} {rows[0][k]}" for k in keys
                         if k not in named)
        cells = []
        for r in rows:
            cell = "(" + ",".join(str(r[k]) for k in named) + f") {r['shows']}"
            cell += f" {r['reached']}/{r['runs']}" if r["runs"] > 1 else ""
            median = r["threshold_km_median"]
            cells.append(cell + ("" if pd.isna(median) else f" at {_int(median)}"))
        parts.append(f"{task} ({', '.join(named)}" + (f"; {same}" if same else "") + "): "
                     + " · ".join(cells))
    return "; ".join(parts)


def _text(task: str, head: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; a column with one value in every row moves to a line above."""
    shared = _shared(head, rows)
    lines = [f"{task}: " + ", ".join(f"{head[j]} {rows[0][j]}" for j in shared)] if shared else \
        [f"{task}:"]
    keep = [j for j in range(len(head)) if j not in shared]
    lines.append(format_table([head[j] for j in keep], [[r[j] for j in keep] for r in rows],
                              align="lr", strip=True))
    return "\n".join(lines) + "\n"


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _latex(head: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("^", r"\^{}") \
                .replace("%", r"\%").replace("&", r"\&")
    lines = [r"\begin{tabular}{" + "l" * len(head) + "}", r"\hline",
             " & ".join(esc(h) for h in head) + r" \\", r"\hline"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def render_pairs(pairs: pd.DataFrame) -> str:
    """One line per pair of rows, each row named by its task's table keys (e.g. ``1,1,113``)."""
    def name(key: tuple) -> str:
        n = len(TASKS[key[0]].table_keys) if key[0] in TASKS else 0
        return ",".join(map(str, key[1:1 + n]))

    lines = ["row i | row j | log-rank p | Holm"]
    for r in pairs.itertuples():
        lines.append(f"{name(r.row_i)} | {name(r.row_j)} | {_num(r.p, '{:.3g}')} | "
                     f"{_num(r.p_holm, '{:.3g}')}")
    return "\n".join(lines) + "\n"


def render_compare(keys: list[str], field: str, tests: pd.DataFrame,
                   pooled: pd.DataFrame | None = None) -> str:
    """One line per test of ``analysis.table.compare_by``: the row (its other table keys), the
    two values of ``field``, and the log-rank p and its Holm correction; then the pooled tests
    (log-rank stratified by row over every row run with both values)."""
    at = keys.index(field)
    task = tests.row_i.iloc[0][0] if len(tests) else ""
    named = [k for k in (TASKS[task].table_keys if task in TASKS else keys[1:]) if k != field]

    def row(key: tuple) -> str:
        return " ".join(f"{k}={key[keys.index(k)]}" for k in named)

    lines = [f"row | {field} i | {field} j | log-rank p | Holm"]
    for r in tests.itertuples():
        lines.append(f"{row(r.row_i)} | {r.row_i[at]} | {r.row_j[at]} | {_num(r.p, '{:.3g}')} | "
                     f"{_num(r.p_holm, '{:.3g}')}")
    if pooled is not None and len(pooled):
        lines += ["", f"pooled over rows (log-rank stratified by row): {field} i | {field} j | "
                      f"rows | reached in i (expected) | z | p | Holm"]
        for r in pooled.itertuples():
            lines.append(f"{r.value_i} | {r.value_j} | {r.strata} | {r.observed_i:g} "
                         f"({r.expected_i:.3g}) | {_num(r.z, '{:.3f}')} | {_num(r.p, '{:.3g}')} | "
                         f"{_num(r.p_holm, '{:.3g}')}")
    return "\n".join(lines) + "\n"
