"""Grids of runs: the product of option values, their validation, and what varies between them.

Nothing here imports Ray, MLflow or torch, so a bad grid answers at once and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping, Sequence

from grokcore.config import ConfigError, RunConfig, fields_only_other_tasks_read

FIELDS = [f for f in dataclasses.fields(RunConfig)]
FIELD_NAMES = [f.name for f in FIELDS]


def product_grid(values: Mapping[str, Sequence[Any]], rows: Sequence[Mapping[str, Any]] = ({},),
                 ) -> list[RunConfig]:
    """RunConfigs for rows x the product of the value lists (rows outermost, then field order).

    A field set by the rows is taken from them, not from ``values``.
    """
    rows = list(rows) or [{}]
    configs = []
    for row in rows:
        names = [n for n in FIELD_NAMES if n in values and n not in row]
        for combo in itertools.product(*(values[n] for n in names)):
            configs.append(RunConfig(**{**dict(zip(names, combo)), **row}))
    return configs


def with_replicates(configs: Sequence[RunConfig], replicates: int) -> list[RunConfig]:
    """Each config ``replicates`` times: replicate i (0-based) trains with weight seed ``seed + i``
    and split seed ``data_seed + i``, so a row's spread covers the initialisation and the split
    (replicate 0 is the config as given; with the defaults, the seed paper's 999 and 598)."""
    if replicates < 1:
        raise ConfigError(f"--replicates {replicates}: give 1 or more")
    return [cfg.replace(seed=cfg.seed + i, data_seed=cfg.data_seed + i)
            for cfg in configs for i in range(replicates)]


def prepare_configs(configs: Sequence[RunConfig],
                    gpus_per_trial: float | None = None) -> list[RunConfig]:
    """Validate every config and settle the sweep's conventions; raise ConfigError (one line).

    * ``checkpoint_every`` 0 becomes 10 x ``eval_every`` (a restarted trial loses at most ten
      evaluations); it must be a multiple of ``eval_every``.
    * Duplicates are dropped (same settings, same trial), keeping the first.
    """
    from grokcore.tasks import validate  # torch: only once there is a grid to check

    if not configs:
        raise ConfigError("the grid is empty")
    out, seen = [], set()
    for i, cfg in enumerate(configs):
        try:
            validate(cfg)
        except ConfigError as err:
            raise ConfigError(f"grid entry {i} ({describe(cfg)}): {err}") from None
        if cfg.checkpoint_every == 0:
            cfg = cfg.replace(checkpoint_every=10 * cfg.eval_every)
        if cfg.checkpoint_every % cfg.eval_every:
            raise ConfigError(f"checkpoint_every={cfg.checkpoint_every} is not a multiple of "
                              f"eval_every={cfg.eval_every}; checkpoints are taken at evaluations")
        key = cfg.to_json()
        if key not in seen:
            seen.add(key)
            out.append(cfg)
    if gpus_per_trial is not None:  # None: settled from the cluster, checked then
        check_devices(out, gpus_per_trial)
    return out


def check_devices(configs: Sequence[RunConfig], gpus_per_trial: float) -> None:
    """A trial set to train on cuda must reserve a GPU: Ray hides the GPUs from one that does
    not. ConfigError (one line) otherwise."""
    for i, cfg in enumerate(configs):
        if cfg.device.startswith("cuda") and gpus_per_trial <= 0:
            raise ConfigError(f"grid entry {i} ({describe(cfg)}): device={cfg.device} needs "
                              "--gpus-per-trial > 0 (Ray hides GPUs from trials that reserve "
                              "none; by default a trial reserves a share only when every node "
                              "has a GPU)")


def varying_fields(configs: Sequence[RunConfig]) -> list[str]:
    """Fields whose value differs between configs, in field order."""
    if len(configs) < 2:
        return []
    dicts = [c.to_dict() for c in configs]
    return [n for n in FIELD_NAMES if len({repr(d[n]) for d in dicts}) > 1]


def describe(cfg: RunConfig, fields: Sequence[str] = ("task", "a", "b", "p")) -> str:
    d = cfg.to_dict()
    return " ".join(f"{n}={d[n]}" for n in fields)


def common_settings(configs: Sequence[RunConfig]) -> str:
    """The settings all trials share, as `name=value` pairs (for the dry-run printout); the
    fields that only other tasks read are left out."""
    unread = (set(varying_fields(configs))
              | fields_only_other_tasks_read({c.task for c in configs}))
    d = configs[0].to_dict()
    return " ".join(f"{n}={d[n]}" for n in FIELD_NAMES if n not in unread)
