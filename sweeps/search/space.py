"""The search space (a define-by-run Optuna space over RunConfig fields) and the objective.

Nothing here imports Ray, Optuna or MLflow (``--help`` and ``--dry-run`` answer at once).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from grokcore.config import ConfigError, RunConfig
from grokcore.records import REACHED, current_status

SCORE = "grok_score"  # the objective's name: the Optuna metric and each trial run's MLflow metric
# The key of a search trial's Tune config that holds its Optuna trial number (NumberedSpace).
OPTUNA_TRIAL = "optuna_trial"


# ==== the search space ===========================================================================

@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (log-scaled or not) or a list of choices."""

    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    only_if: tuple[str, str] | None = None  # (field, value): searched only in that branch

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = " log" if self.log else ""
        return f"[{fmt(self.low)}, {fmt(self.high)}]{scale}"

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return self.low <= value <= self.high


# Every setting the search can vary, with its default range. The Grokfast parameters are searched
# only in the branch of their filter (a conditional space); d_model scales d_head and d_mlp with it.
PARAMS: dict[str, Param] = {
    "lr": Param("float", 1e-4, 1e-2, log=True),
    "weight_decay": Param("float", 0.1, 10.0, log=True),
    "frac_train": Param("float", 0.3, 0.7),
    "beta1": Param("float", 0.8, 0.95),
    "beta2": Param("float", 0.95, 0.999),
    "warmup_epochs": Param("int", 0, 200),
    "loss": Param("choice", choices=("softmax", "stablemax")),
    "ortho_grad": Param("choice", choices=(False, True)),
    "grokfast": Param("choice", choices=("none", "ema", "ma")),
    "grokfast_alpha": Param("float", 0.8, 0.99, only_if=("grokfast", "ema")),
    "grokfast_ema_lambda": Param("float", 0.5, 5.0, only_if=("grokfast", "ema")),
    "grokfast_window": Param("int", 10, 200, only_if=("grokfast", "ma")),
    "grokfast_ma_lambda": Param("float", 1.0, 8.0, only_if=("grokfast", "ma")),
    "d_model": Param("choice", choices=(64, 128, 256)),
}


@dataclass(frozen=True)
class SearchSpace:
    """Optuna define-by-run space over RunConfig fields (picklable: Tune saves it with the sampler).

    Called with an Optuna trial, it suggests each searched setting (RunConfig field names are the
    Optuna parameter names) and returns the settings that follow from them: d_head and d_mlp
    keep their proportion to d_model in the base.
    """

    base: RunConfig
    params: tuple[tuple[str, Param], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.params]

    def __call__(self, trial) -> dict[str, Any] | None:
        chosen: dict[str, Any] = {}
        for name, spec in self.params:
            if spec.only_if is not None:
                on, value = spec.only_if
                if chosen.get(on, getattr(self.base, on)) != value:
                    continue
            if spec.kind == "float":
                chosen[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
            elif spec.kind == "int":
                chosen[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
            else:
                chosen[name] = trial.suggest_categorical(name, list(spec.choices))
        return self.derived(chosen) or None

    def derived(self, chosen: Mapping[str, Any]) -> dict[str, Any]:
        if "d_model" not in chosen:
            return {}
        width, base = chosen["d_model"], self.base
        return {"d_head": max(1, round(base.d_head * width / base.d_model)),
                "d_mlp": max(1, round(base.d_mlp * width / base.d_model))}

    def baseline_point(self) -> dict[str, Any]:
        """The base's values of the searched settings (only those its own branch would suggest)."""
        point = {}
        for name, spec in self.params:
            if spec.only_if is None or getattr(self.base, spec.only_if[0]) == spec.only_if[1]:
                point[name] = getattr(self.base, name)
        return point

    def config(self, params: Mapping[str, Any]) -> RunConfig:
        """The RunConfig a trial with these Optuna params trains."""
        return self.base.replace(**params, **self.derived(params))


def build_space(base: RunConfig, names: Sequence[str] | None = None,
                ranges: Mapping[str, str] | None = None) -> SearchSpace:
    """The space over ``names`` (default: all of PARAMS) with ``ranges`` overriding defaults
    ("LOW:HIGH" for numbers, "A,B,C" for choices). Raises ConfigError (one line) when a name is
    unknown, a range is malformed, or the base's own value lies outside its range."""
    names = list(names or PARAMS)
    unknown = [n for n in list(names) + list(ranges or {}) if n not in PARAMS]
    if unknown:
        raise ConfigError(f"cannot search {', '.join(unknown)}; searchable: {', '.join(PARAMS)}")
    params = {n: PARAMS[n] for n in PARAMS if n in names}  # PARAMS order: conditions come first
    for name, text in (ranges or {}).items():
        if name not in params:
            raise ConfigError(f"--range {name}=... given but {name} is not searched (--search)")
        params[name] = _parse_range(name, text, PARAMS[name])
    for name, spec in params.items():
        if spec.only_if and spec.only_if[0] not in params \
                and getattr(base, spec.only_if[0]) != spec.only_if[1]:
            raise ConfigError(f"{name} is searched only when {spec.only_if[0]}={spec.only_if[1]}; "
                              f"search {spec.only_if[0]} too or set --{spec.only_if[0]} "
                              f"{spec.only_if[1]}")
    space = SearchSpace(base, tuple(params.items()))
    for name, value in space.baseline_point().items():
        if not params[name].contains(value):
            raise ConfigError(f"the base's {name}={value} is outside the searched "
                              f"{params[name].describe()}; widen it with --range or change the base")
    from grokcore.tasks import validate

    validate(space.config(space.baseline_point()))
    return space


def _parse_range(name: str, text: str, default: Param) -> Param:
    kind = default.kind
    try:
        if kind == "choice":
            cast = type(default.choices[0])
            if cast is bool:
                choices = tuple(v.strip().lower() in ("1", "true", "yes") for v in text.split(","))
            else:
                choices = tuple(cast(v) for v in text.split(","))
            return dataclasses.replace(default, choices=choices)
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        form = "A,B,C" if kind == "choice" else "LOW:HIGH"
        raise ConfigError(f"--range {name}={text!r}: expected {form}") from None
    if not low < high or (default.log and low <= 0):
        raise ConfigError(f"--range {name}={text!r}: need LOW < HIGH" +
                          (" and LOW > 0 (log scale)" if default.log else ""))
    if kind == "int":
        low, high = int(low), int(high)
    return dataclasses.replace(default, low=low, high=high)


@dataclass(frozen=True)
class NumberedSpace:
    """The define-by-run space given to Optuna: the space's settings plus the Optuna trial's number
    under OPTUNA_TRIAL, a constant of the trial's Tune config, so the searcher knows which Optuna
    trial a Tune trial is without reading OptunaSearch's private state."""

    space: SearchSpace

    def __call__(self, trial) -> dict[str, Any]:
        return {**(self.space(trial) or {}), OPTUNA_TRIAL: trial.number}


# ==== the objective ==============================================================================

def grok_score(status: str | None, threshold_epoch: Any, epochs: int,
               penalty_factor: float) -> float:
    """The objective: the threshold epoch, or penalty_factor x epochs when the run did not reach
    the threshold (status, old names mapped: grokcore.records)."""
    if current_status(status) == REACHED and threshold_epoch is not None:
        return float(threshold_epoch)
    return float(penalty_factor * epochs)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
