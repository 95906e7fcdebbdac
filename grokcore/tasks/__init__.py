"""Task registry: a task is looked up by the name in ``RunConfig.task``."""

from grokcore.tasks.base import Dataset, Task
from grokcore.tasks.expmod import ExpModTask

TASKS: dict[str, Task] = {task.name: task for task in (ExpModTask(),)}


def build_dataset(cfg) -> Dataset:
    return TASKS[cfg.task].build(cfg)


__all__ = ["TASKS", "Dataset", "Task", "build_dataset"]
