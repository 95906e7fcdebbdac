"""Task registry: a task is looked up by the name in ``RunConfig.task``; presets by name."""

from typing import Any

from grokcore.config import ConfigError, RunConfig
from grokcore.tasks.base import Dataset, TableColumn, Task, TaskBase
from grokcore.tasks.expmod import ExpModTask
from grokcore.tasks.gcd import GcdTask
from grokcore.tasks.numbers import CoprimalityTask, PrimalityTask
from grokcore.tasks.sorting import SortingTask

TASKS: dict[str, Task] = {task.name: task for task in (
    ExpModTask(), PrimalityTask(), CoprimalityTask(), GcdTask(), SortingTask())}

# Named settings of the seed paper's experiments: preset -> (task, RunConfig values). Applied on
# top of the task's defaults by grokcore.tasks.config_for(task, preset) and by --preset on the command line.
PRESETS: dict[str, tuple[str, dict]] = {
    # Primality as the seed ran it: 1..1000 as single tokens, train 1..700, test 701..1000.
    "primality-seed": ("primality", dict(n_max=1000, encoding="token", split="sequential",
                                         frac_train=0.7)),
    # Encoder-decoder 4+4 layers, d_model 512, 8 heads, FFN 2048, base 10, 400k log-uniform pairs.
    "gcd-seed": ("gcd", dict(n_layers=4, d_model=512, n_heads=8, d_head=64, d_mlp=2048, base=10,
                             gcd_sampling="loguniform", n_examples=400_000, n_max=1_000_000,
                             lr=1e-4, epochs=2000)),
    # Fixed length 25 over a vocabulary of 50 (47 values + START, MID, PAD), d_model 64.
    "sorting-seed-fixed": ("sorting", dict(list_len=25, n_max=47, d_model=64, d_head=64)),
    # Variable length up to 100 over a vocabulary of 202 (199 values + 3), d_model 128.
    "sorting-seed-variable": ("sorting", dict(list_len=100, n_max=199, variable_len=True,
                                              d_model=128, d_head=128)),
}


def validate(cfg: RunConfig) -> RunConfig:
    """Raise ConfigError (one line) on the first invalid setting of ``cfg``; return it if valid:
    the task name, the settings every task shares (``RunConfig.check_fields``), then the task's
    own checks."""
    if cfg.task not in TASKS:
        raise ConfigError(f"unknown task {cfg.task!r}; choose one of: {', '.join(sorted(TASKS))}")
    cfg.check_fields()
    task = TASKS[cfg.task]
    if cfg.measure_every and not task.has_progress_measures:
        raise ConfigError("progress measures (--measure-every) need the expmod task with 2 "
                          "operands; set --measure-every 0")
    if cfg.grok_on != "test" and cfg.grok_on not in task.test_groups:
        raise ConfigError(f"grok_on={cfg.grok_on!r}: task {cfg.task} has no such test subset; "
                          "use --grok-on test")
    task.validate(cfg)
    return cfg


def config_for(task: str = "expmod", preset: str | None = None, **overrides: Any) -> RunConfig:
    """A config with the task's defaults (then a named preset, then ``overrides``) applied."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(sorted(TASKS))}")
    values = dict(getattr(TASKS[task], "defaults", {}))
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(PRESETS))}")
        preset_task, preset_values = PRESETS[preset]
        if preset_task != task:
            raise ConfigError(f"preset {preset!r} is for task {preset_task!r}, not {task!r}; "
                              f"pass --task {preset_task}")
        values.update(preset_values)
    values.update(overrides)
    return RunConfig.from_dict({**values, "task": task})


def build_dataset(cfg) -> Dataset:
    return TASKS[cfg.task].build(cfg)


__all__ = ["PRESETS", "TASKS", "Dataset", "TableColumn", "Task", "TaskBase", "build_dataset",
           "config_for", "validate"]
