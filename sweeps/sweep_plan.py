"""What a sweep runs, with what and where, checked before Ray or MLflow is touched.

``run_sweep``'s arguments become a :class:`SweepPlan`, and :meth:`SweepPlan.checked` validates
them in one place: the grid (or a search's base run and searched fields), the
:class:`Resources`, the figures mode, the tracking store, and the sweep's name and folder under
Tune's storage (:class:`SweepError` when there is nothing to resume, or a new sweep's folder is
taken). A bad setting therefore stops the sweep before anything is written. Driver side.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune

from grokcore.config import ConfigError, RunConfig
from sweeps.figures_after import check_mode
from sweeps.grid import FIELD_NAMES, prepare_configs
from sweeps.tracking import normalize_tracking_uri
from sweeps.trial import FaultInjection


class SweepError(RuntimeError):
    """The sweep could not start (no cluster, nothing to resume...); the message is one line."""


@dataclass(frozen=True)
class Resources:
    """What each trial gets and how many run: Ray resources of one trial (GPUs may be
    fractional; ``None``: settled from the cluster, see :meth:`settle`), at most
    ``max_concurrent`` trials at once (0: as many as fit), and ``retries`` restarts of a crashed
    trial, each from its last checkpoint (after that the trial is recorded ``failed`` and the
    others go on)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_concurrent: int = 0
    retries: int = 2

    def check(self) -> None:
        if (self.retries < 0 or self.cpus_per_trial <= 0 or (self.gpus_per_trial or 0) < 0
                or self.max_concurrent < 0):
            raise ConfigError("need retries >= 0, cpus_per_trial > 0, gpus_per_trial >= 0 and "
                              "max_concurrent >= 0")

    def settle(self, nodes: Sequence[Mapping[str, float]]) -> "Resources":
        """These resources with ``gpus_per_trial`` settled, from the Ray resources of the
        cluster's live ``nodes``. Given, it stays. ``None`` (auto): 0 unless every node has a
        GPU, else the share that lets as many trials use a node's GPUs as its CPUs run, so that
        no node idles (a trial that reserves a GPU runs only on a node with one, and Ray hides
        the GPUs from a trial that reserves none)."""
        if self.gpus_per_trial is not None:
            return self
        shares = []
        for node in nodes:
            trials = int(node.get("CPU", 0.0) // self.cpus_per_trial)
            if trials:  # a node that cannot hold a trial does not count
                shares.append(min(1.0, node.get("GPU", 0.0) / trials))
        share = min(shares, default=0.0)
        # Ray counts fractions of a GPU in ten-thousandths: round down, so that they all fit.
        return dataclasses.replace(self, gpus_per_trial=math.floor(share * 1e4) / 1e4)

    def describe(self, cluster: Mapping[str, float]) -> list[str]:
        """What the sweep will use of ``cluster`` (Ray's cluster_resources()), as lines to print:
        the resources, how many trials fit at once, and a hint where GPUs would stay idle."""
        cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
        fit = [int(cpus // self.cpus_per_trial)]
        if self.gpus_per_trial:
            fit.append(int(gpus // self.gpus_per_trial))
        if self.max_concurrent:
            fit.append(self.max_concurrent)
        gpu = f" and {self.gpus_per_trial:g} GPU" if self.gpus_per_trial else ""
        lines = [f"Ray: {cpus:g} CPU, {gpus:g} GPU; each trial {self.cpus_per_trial:g} CPU{gpu}, "
                 f"{min(fit)} at once"]
        if gpus and not self.gpus_per_trial:
            lines.append(f"note: the cluster's {gpus:g} GPU(s) stay idle: trials that reserve no "
                         "GPU train on CPUs (by default they reserve a share only when every node "
                         "has a GPU); --gpus-per-trial 0.25 lets four trials share each GPU, and "
                         "runs trials only on nodes with one")
        return lines


@dataclass
class Search:
    """A search instead of a grid: ``num_samples`` trials of ``base`` with the fields of
    ``param_space`` (RunConfig field names -> Tune domains) chosen by ``search_alg`` (Tune's
    searcher; None: random/grid sampling of ``param_space``), optimizing ``metric`` in ``mode``."""

    base: RunConfig = field(default_factory=RunConfig)
    param_space: Mapping[str, Any] = field(default_factory=dict)
    search_alg: Any = None
    num_samples: int = 1
    metric: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's settings: ``run_sweep``'s arguments (see there), and once :meth:`checked`,
    the grid validated, the tracking URI and storage made absolute, the sweep's ``name`` and
    Tune's experiment folder ``path`` settled, and a search's validated ``base`` run."""

    configs: Sequence[RunConfig]
    search: Search | None
    experiment: str
    name: str | None
    tracking_uri: str
    storage: str | os.PathLike
    address: str | None
    resume: bool
    resources: Resources
    fault: FaultInjection | None
    progress_every_s: float
    command: str | None
    figures: str
    pack: str | int
    path: str = ""
    base: RunConfig | None = None

    @property
    def runs(self) -> Sequence[RunConfig]:
        """The runs the sweep validates and describes: the grid, or a search's base run."""
        return [self.base] if self.search is not None else self.configs

    @property
    def n_trials(self) -> int:
        return self.search.num_samples if self.search is not None else len(self.configs)

    def checked(self) -> "SweepPlan":
        """This plan validated and settled; ConfigError for invalid settings, SweepError when
        there is nothing to resume or a new sweep's folder already holds one. Nothing is
        written by this check."""
        search, configs, base = self.search, self.configs, None
        if (search is not None) == bool(configs):
            raise ConfigError("give either configs (a grid) or a search, not both")
        if search is not None:
            base = prepare_configs([search.base], self.resources.gpus_per_trial)[0]
            unknown = sorted(set(search.param_space) - set(FIELD_NAMES))
            if unknown:
                raise ConfigError(f"param_space keys {unknown} are not RunConfig fields")
        else:
            configs = prepare_configs(configs, self.resources.gpus_per_trial)
        self.resources.check()
        check_mode(self.figures)
        tracking_uri = normalize_tracking_uri(self.tracking_uri)
        storage = _storage_path(self.storage)
        name, path = _sweep_path(storage, self.experiment, self.name, self.resume)
        return dataclasses.replace(self, configs=configs, base=base, tracking_uri=tracking_uri,
                                   storage=storage, name=name, path=path)


# ==== the sweep's name and folder ===============================================================

def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def new_sweep_name(experiment: str) -> str:
    """The default name of a new sweep: EXPERIMENT-DATE-TIME."""
    return f"{safe_name(experiment)}-{time.strftime('%Y%m%d-%H%M%S')}"


def _storage_path(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def _latest_sweep(storage: str, experiment: str) -> str | None:
    root = Path(storage)
    if "://" in storage or not root.is_dir():
        return None
    prefix = safe_name(experiment) + "-"
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)
             and tune.Tuner.can_restore(str(p))]
    return max(found, key=lambda p: p.stat().st_mtime).name if found else None


def _sweep_path(storage: str, experiment: str, name: str | None, resume: bool,
                ) -> tuple[str, str]:
    """The sweep's name and folder; SweepError when there is nothing to resume, or (new) when
    the folder already holds a sweep."""
    if resume:
        name = name or _latest_sweep(storage, experiment)
        path = f"{storage.rstrip('/')}/{name}" if name else None
        if not path or not tune.Tuner.can_restore(path):
            raise SweepError(f"no sweep to resume under {storage}"
                             + (f" named {name!r}" if name else f" for experiment {experiment!r}"))
        return name, path
    name = name or new_sweep_name(experiment)
    path = f"{storage.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        raise SweepError(f"a sweep named {name!r} already exists under {storage}; pass "
                         "--resume to continue it or another --name")
    return name, path
