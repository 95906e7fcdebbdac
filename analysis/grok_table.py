"""The paper's Table 1 from a sweep in MLflow: one row per configuration, aggregated over seeds.

    python -m analysis.grok_table --experiment NAME [--tracking-uri URI] [--format md|csv|latex]
                                  [--out FILE] [--no-log]

A configuration is (task, the task's own keys, dtype, frac_train): for expmod (a, b, p); for
primality and coprimality (n_max, encoding, base, split); for gcd (base, gcd_sampling, n_max); for
sorting (list_len, n_max, variable_len, repeats, pos_embed, n_heads) (each task's ``table_keys``).
The seeds (and anything else that varies) are aggregated. Columns: runs; grokked k/n; grok epoch
median, min, max (over grokked runs); memorization epoch median; grok delay median; spikes (total
over the runs); diverged and failed counts; label entropy and chi-square p-value; whether x^a and
y^b are bijections; leakage (mean over runs); the paper's grok epoch for that (a, b, p) where it
has one (analysis/data/seed_table1.csv; "no grok" where it reports none). A task other than expmod
shows, instead of the dataset statistics and the paper, the median end value of its
``table_metrics`` (balanced accuracy for primality, GCDs learned and Charton-rule agreement for
gcd, full-sequence accuracy and copying score for sorting). Markdown and LaTeX give one table per
task. Status and epochs come from the runs' tags; dataset statistics from their metrics. The table
is also stored in the experiment as a run named ``grok_table`` tagged ``run_kind=analysis``
(artifacts grok_table.md/.csv/.tex), which readers skip; ``--no-log`` leaves the store untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.runs import AnalysisError, client_for, fail, log_analysis_run, load_runs, tag_value
from grokcore.records import DEFAULT_TRACKING_URI, OUTCOME_VALUES
from grokcore.tasks import TASKS

SEED_TABLE = Path(__file__).parent / "data" / "seed_table1.csv"
EXPMOD_STATS = ("label_entropy", "label_chi2_pvalue", "leakage", "bijective_a", "bijective_b")


def config_keys(task: str) -> tuple[str, ...]:
    """The params that name a configuration of ``task`` (its ``table_keys``); seeds aggregate."""
    keys = TASKS[task].table_keys if task in TASKS else ()
    return ("task", *keys, "dtype", "frac_train")


def task_metrics(task: str) -> tuple[str, ...]:
    return TASKS[task].table_metrics if task in TASKS else ()


def seed_table() -> pd.DataFrame:
    return pd.read_csv(SEED_TABLE)


def paper_figure(seed: pd.DataFrame, task: str, a, b, p) -> str:
    if task != "expmod":
        return ""
    hit = seed[(seed.a == a) & (seed.b == b) & (seed.p == p)]
    if hit.empty:
        return ""
    row = hit.iloc[0]
    return str(int(row.grok_epoch)) if int(row.grokked) else "no grok"


def _tags(runs: pd.DataFrame, name: str) -> pd.Series:
    col = f"tags.{name}"
    if col not in runs:
        return pd.Series([None] * len(runs), index=runs.index, dtype=object)
    return runs[col].map(tag_value)


def _metric(runs: pd.DataFrame, name: str) -> pd.Series:
    col = f"metrics.{name}"
    return runs[col] if col in runs else pd.Series([float("nan")] * len(runs), index=runs.index)


def _param_value(value):
    """A param as MLflow stores it (a string) back to an int where it is one, so keys sort."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "none"
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def _outcome_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: every config key of its task, its status, outcome tags and end metrics."""
    tasks = runs.get("params.task", pd.Series(["expmod"] * len(runs), index=runs.index))
    frame = pd.DataFrame({"task": tasks.fillna("expmod")}, index=runs.index)
    keys = {k for task in frame.task.unique() for k in config_keys(task)} - {"task"}
    for key in sorted(keys):
        frame[key] = runs.get(f"params.{key}", pd.Series([None] * len(runs), index=runs.index)) \
            .map(_param_value)
    frame["frac_train"] = frame["frac_train"].astype(float)
    # A run with no end tag either failed before reporting (MLflow FAILED) or was interrupted
    # and not resumed yet (RUNNING / KILLED): the latter is unfinished, not failed.
    # (``status`` is MLflow's run status, ``tags.status`` the trial's end value.)
    unended = runs.get("status", pd.Series(["FAILED"] * len(runs), index=runs.index))
    unended = unended.map(lambda s: "failed" if s == "FAILED" else "unfinished")
    status = runs.get("tags.status", pd.Series([None] * len(runs), index=runs.index))
    frame["status"] = status.where(status.notna(), unended)
    for name in OUTCOME_VALUES:
        frame[name] = _tags(runs, name).astype(float)
    metrics = set(EXPMOD_STATS) | {m for task in frame.task.unique() for m in task_metrics(task)}
    for name in sorted(metrics):
        frame[name] = _metric(runs, name).astype(float)
    return frame


def _outcome(group: pd.DataFrame) -> dict:
    """What every task's row has: runs, grokked, grok epochs, memorization, spikes, failures."""
    grokked = group[group.status == "grokked"]
    epochs = grokked.grok_epoch.dropna()
    return {
        "runs": len(group),
        "grokked": len(grokked),
        "grok_epoch_median": epochs.median() if len(epochs) else None,
        "grok_epoch_min": epochs.min() if len(epochs) else None,
        "grok_epoch_max": epochs.max() if len(epochs) else None,
        "memorization_epoch_median": _median(group.memorization_epoch),
        "grok_delay_median": _median(grokked.grok_delay),
        "spikes": int(group.n_spikes.fillna(0).sum()),
        "diverged": int((group.status == "diverged").sum()),
        "failed": int((group.status == "failed").sum()),
        "unfinished": int((group.status == "unfinished").sum()),
    }


def _expmod_columns(group: pd.DataFrame, row: dict, seed: pd.DataFrame) -> dict:
    return {
        "label_entropy": _median(group.label_entropy),
        "label_chi2_pvalue": _median(group.label_chi2_pvalue),
        "bijective_a": _flag(group.bijective_a),
        "bijective_b": _flag(group.bijective_b),
        "leakage": group.leakage.mean() if group.leakage.notna().any() else None,
        "paper_grok_epoch": paper_figure(seed, row["task"], row["a"], row["b"], row["p"]),
    }


def build_table(runs: pd.DataFrame, seed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Aggregate trial runs (``analysis.runs.load_runs``) into one row per configuration.

    Each task keys its rows by its own ``table_keys``; an expmod row adds the dataset statistics
    and the paper's figure, another task's row the median end value of each of its
    ``table_metrics`` (column ``final_<metric>``). Columns a task does not have are left empty.
    """
    seed = seed_table() if seed is None else seed
    if runs.empty:
        return pd.DataFrame()
    frame = _outcome_frame(runs)
    rows = []
    for task, of_task in frame.groupby("task", sort=True):
        keys = config_keys(task)
        for key, group in of_task.groupby(list(keys), sort=True):
            row = dict(zip(keys, key))
            row.update(_outcome(group))
            if task == "expmod":
                row.update(_expmod_columns(group, row, seed))
            for name in task_metrics(task):
                row[f"final_{name}"] = _median(group[name])
            rows.append(row)
    return pd.DataFrame(rows)


def _median(values: pd.Series):
    values = values.dropna()
    return float(values.median()) if len(values) else None


def _flag(values: pd.Series):
    values = values.dropna()
    return bool(values.iloc[0]) if len(values) else None


# ---- rendering ---------------------------------------------------------------------------------
OUTCOME_HEADERS = ("grokked", "grok epoch (median [range])", "memorized", "delay", "spikes",
                   "diverged", "failed", "unfinished")
EXPMOD_HEADERS = ("label entropy", "chi2 p", "x^a bij.", "y^b bij.", "leakage", "paper")


def headers(task: str) -> list[str]:
    keys = [k for k in config_keys(task) if k != "frac_train"]
    extra = EXPMOD_HEADERS if task == "expmod" else [f"final {m}" for m in task_metrics(task)]
    return [*keys, "frac", *OUTCOME_HEADERS, *extra]


def display_rows(table: pd.DataFrame, task: str) -> list[list[str]]:
    """The rows of one task, as strings under ``headers(task)``."""
    out = []
    for r in table[table.task == task].to_dict("records"):
        if r["grok_epoch_median"] is None or pd.isna(r["grok_epoch_median"]):
            grok = "-"
        elif r["grok_epoch_min"] == r["grok_epoch_max"]:
            grok = _int(r["grok_epoch_median"])
        else:
            grok = (f"{_int(r['grok_epoch_median'])} [{_int(r['grok_epoch_min'])}-"
                    f"{_int(r['grok_epoch_max'])}]")
        keys = [str(r[k]) for k in config_keys(task) if k != "frac_train"]
        cells = [*keys, f"{r['frac_train']:g}", f"{r['grokked']}/{r['runs']}", grok,
                 _int(r["memorization_epoch_median"]), _int(r["grok_delay_median"]),
                 str(r["spikes"]), str(r["diverged"]), str(r["failed"]), str(r["unfinished"])]
        if task == "expmod":
            cells += [_num(r["label_entropy"], "{:.4f}"), _num(r["label_chi2_pvalue"], "{:.3g}"),
                      _yes(r["bijective_a"]), _yes(r["bijective_b"]),
                      _num(r["leakage"], "{:.3f}"), r["paper_grok_epoch"] or "-"]
        else:
            cells += [_num(r[f"final_{m}"], "{:.4g}") for m in task_metrics(task)]
        out.append(cells)
    return out


def _int(v) -> str:
    return "-" if v is None or pd.isna(v) else str(int(round(v)))


def _num(v, fmt: str) -> str:
    return "-" if v is None or pd.isna(v) else fmt.format(v)


def _yes(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


def render(table: pd.DataFrame, fmt: str) -> str:
    """The whole table as CSV, or one markdown / LaTeX table per task, each with its columns."""
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt not in ("md", "latex"):
        raise AnalysisError(f"unknown format {fmt!r}; choose md, csv or latex")
    draw = _markdown if fmt == "md" else _latex
    return "\n".join(draw(headers(task), display_rows(table, task))
                     for task in dict.fromkeys(table.task))


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.grok_table",
                                     description="Print the grok-epoch table (the paper's Table 1) "
                                                 "of a sweep stored in MLflow.")
    parser.add_argument("--experiment", required=True, help="MLflow experiment name of the sweep")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI})")
    parser.add_argument("--format", choices=("md", "csv", "latex"), default="md",
                        help="output format (default: md)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here too")
    parser.add_argument("--no-log", action="store_true",
                        help="do not store the table in the experiment as a 'grok_table' run")
    args = parser.parse_args(argv)
    try:
        client = client_for(args.tracking_uri)
        runs = load_runs(client, args.experiment)
        if runs.empty:
            raise AnalysisError(f"experiment {args.experiment!r} has no trial runs")
        table = build_table(runs)
        text = render(table, args.format)
        if args.out:
            try:
                args.out.write_text(text)
            except OSError as err:
                raise AnalysisError(f"cannot write {args.out}: {err.strerror}") from None
        if not args.no_log:
            log_analysis_run(client, args.experiment, "grok_table",
                             {"grok_table.md": render(table, "md"),
                              "grok_table.csv": render(table, "csv"),
                              "grok_table.tex": render(table, "latex")},
                             tags={"n_trial_runs": str(len(runs))})
    except AnalysisError as err:
        return fail(str(err))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
