"""What a trial's MLflow run is called and which params it carries: names short enough for the
runs table (``a3b4 p113 frac0.3 fp32 s0``, ``gcd B10 ...``) and the RunConfig fields its task
reads."""

from __future__ import annotations

from typing import Any, Sequence

from grokcore.config import RunConfig, fields_only_other_tasks_read, in_force
from grokcore.records import tag_text

# Short spellings of the table keys in run names (booleans: (on, off)).
_SHORT = {"n_max": "n", "base": "B", "list_len": "L", "n_heads": "h", "weight_decay": "wd",
          "data_seed": "ds", "frac_train": "frac", "seed": "s"}
_FLAGS = {"variable_len": ("var", "fixed"), "repeats": ("rep", "norep"),
          "pos_embed": ("pos", "nopos")}


def task_params(cfg: RunConfig) -> dict[str, str]:
    """The run's params: the RunConfig fields its task reads (not the fields of other tasks),
    as in force (``grokcore.config.in_force``: no settings of an option that is off, the spike
    floor the trainer uses)."""
    unread = fields_only_other_tasks_read([cfg.task])
    return {k: tag_text(v) for k, v in in_force(cfg).items() if k not in unread}


def run_name(cfg: RunConfig, index: int | None = None, extras: Sequence[str] = ()) -> str:
    """A name that fits the runs table: ``primality n1000 digits B10 sequential frac0.7 fp32
    s0``, ``sorting L10 n50 fixed norep pos h1 frac0.8 fp32 s0``: the task and its table keys
    (or the task's own spelling of them, its ``run_name_parts``: ``a3b4 p113`` for expmod, as
    the paper writes them), frac, dtype (fp32, fp64) and seed, then the fields named in
    ``extras`` (the grid's other varying settings, e.g. ``lr=0.003``) that the task reads.
    ``index`` (the grid index, also the tag ``grid_index``) prefixes it as ``#3`` when given."""
    from grokcore.tasks import TASKS  # imports torch: the driver has it by then

    task = TASKS[cfg.task]
    parts = task.run_name_parts(cfg)
    if parts is None:
        parts = [cfg.task] + [_name_part(k, getattr(cfg, k)) for k in task.table_keys]
    parts += [f"frac{cfg.frac_train:g}", cfg.dtype.replace("float", "fp"), f"s{cfg.seed}"]
    named = {*task.table_keys, "frac_train", "dtype", "seed", "task",
             *fields_only_other_tasks_read([cfg.task])}
    parts += [_name_part(k, getattr(cfg, k), "=") for k in extras if k not in named]
    return " ".join(([f"#{index}"] if index is not None else []) + parts)


def _name_part(key: str, value: Any, sep: str = "") -> str:
    if isinstance(value, bool):
        on, off = _FLAGS.get(key, (key, f"no-{key}"))
        return on if value else off
    if isinstance(value, str):
        return value if not sep else f"{key}={value}"
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    short = _SHORT.get(key)
    return f"{short}{text}" if short and not sep else f"{short or key}={text}"
