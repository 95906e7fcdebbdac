"""RunConfig: every setting of one training run, in one flat, validated dataclass.

The field names are the contract with the command line (``--frac`` -> ``frac_train`` is the one
alias), with Ray Tune grids and with MLflow params. Each field carries its help text, so the
command line, the docs and the sweeps read the same description.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

DTYPES = ("float32", "float64")
ACTIVATIONS = ("relu", "gelu")
SPLITS = ("pairs", "classes", "random", "sequential")  # each task accepts its own subset
ENCODINGS = ("token", "digits")
GCD_SAMPLINGS = ("uniform", "loguniform", "loguniform_gcd")
LOSSES = ("softmax", "stablemax")
GROKFAST = ("none", "ema", "ma")
GROK_ON = ("test", "unseen")
COMPILE = ("auto", "on", "off")
MAX_EXAMPLES = 2_000_000  # p ** n_operands above this does not fit a full batch on a laptop


class ConfigError(ValueError):
    """A setting is invalid; the message says which one and how to mend it, in one line."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A RunConfig field with its help text; ``tasks=`` names the only tasks that read it."""
    return field(default=default, metadata={"help": help, **kw})


# The tasks that read a task-specific field (the field's ``tasks`` metadata).
EXPMOD, NUMBERS, GCD, SORTING = ("expmod",), ("primality", "coprimality"), ("gcd",), ("sorting",)


@dataclass
class RunConfig:
    # --- task -------------------------------------------------------------------------------
    task: str = _f("expmod", "task name; see `python -m grokcore tasks`")
    p: int = _f(113, "modulus, must be prime (expmod)", tasks=EXPMOD)
    a: int = _f(1, "exponent of x, 1..p-1 (expmod; the paper's grid is 1..9)", tasks=EXPMOD)
    b: int = _f(1, "exponent of y and of every later operand, 1..p-1 (expmod)", tasks=EXPMOD)
    n_operands: int = _f(2, "number of operands k in (x1^a + x2^b + ... + xk^b) mod p (expmod)",
                         tasks=EXPMOD)
    frac_train: float = _f(0.3, "share of the examples used for training, in (0, 1)", flag="frac")
    split: str = _f("pairs", "how to split: expmod 'pairs' splits the inputs (x, y) as the seed "
                    "paper does, 'classes' the classes (u, v) = (x^a, y^b) so nothing leaks; "
                    "primality/coprimality/sorting 'random', or 'sequential' (train on the first "
                    "frac of the numbers, as the seed's primality run)")
    n_max: int = _f(0, "range of the numbers: primality 1..n_max, coprimality pairs in 1..n_max, "
                    "gcd operands 1..n_max, sorting values 0..n_max-1 (0: the task's default)",
                    tasks=NUMBERS + GCD + SORTING)
    encoding: str = _f("token", "primality/coprimality input: 'token' (one token per number, the "
                       "seed's) or 'digits' (fixed-width base-`base` digit tokens)", tasks=NUMBERS)
    base: int = _f(10, "base of the digit tokens (primality/coprimality with digits; gcd)",
                   tasks=NUMBERS + GCD)
    n_examples: int = _f(0, "examples to draw: gcd training pairs, sorting lists (0: the task's "
                         "default)", tasks=GCD + SORTING)
    gcd_sampling: str = _f("loguniform", "gcd training operands: 'uniform', 'loguniform', or "
                           "'loguniform_gcd' (log-uniform operands and log-uniform GCDs)",
                           tasks=GCD)
    gcd_test_per_gcd: int = _f(30, "gcd test set: pairs for each GCD 1..100 (k times a coprime "
                               "pair)", tasks=GCD)
    list_len: int = _f(10, "sorting: list length (the longest when variable_len)", tasks=SORTING)
    variable_len: bool = _f(False, "sorting: draw each list's length uniformly in 2..list_len",
                            tasks=SORTING)
    repeats: bool = _f(False, "sorting: lists may repeat values", tasks=SORTING)
    data_seed: int = _f(598, "seed of the train/test split (598 as in the seed's notebooks)")
    # --- model ------------------------------------------------------------------------------
    n_layers: int = _f(1, "transformer blocks")
    n_heads: int = _f(4, "attention heads per block")
    d_model: int = _f(128, "width of the residual stream")
    d_head: int = _f(32, "width of one attention head")
    d_mlp: int = _f(512, "hidden width of the MLP")
    act: str = _f("relu", "MLP activation: relu or gelu")
    use_bias: bool = _f(False, "learn biases (the seed freezes them at zero)")
    attn_only: bool = _f(False, "drop the MLPs (attention-only transformer)")
    pos_embed: bool = _f(True, "learned positional embeddings")
    dtype: str = _f("float32", "dtype of the weights and activations: float32 or float64")
    seed: int = _f(999, "seed of the weight initialisation (999 as in the seed's notebooks)")
    # --- optimiser and loss -----------------------------------------------------------------
    lr: float = _f(1e-3, "AdamW learning rate")
    weight_decay: float = _f(1.0, "AdamW weight decay")
    beta1: float = _f(0.9, "AdamW beta1")
    beta2: float = _f(0.98, "AdamW beta2")
    warmup_epochs: int = _f(0, "linear learning-rate warm-up over this many epochs (0: none)")
    loss_dtype: str = _f("float64", "dtype of log-softmax in the loss: float64 (the seed's) or "
                         "float32 (to study softmax collapse and spikes)")
    batch_size: int = _f(0, "minibatch size; 0: full batch, one optimiser step per epoch")
    loss: str = _f("softmax", "normalisation in the cross-entropy: softmax, or stablemax (Prieto et "
                   "al. 2025: s(x) = x + 1 for x >= 0, 1 / (1 - x) below; cannot collapse)")
    ortho_grad: bool = _f(False, "orthogonal gradient before AdamW (Prieto et al. 2025): per "
                          "tensor, drop the gradient's component along the weights, keep its norm")
    grokfast: str = _f("none", "Grokfast gradient filter (Lee et al. 2024): none, ema "
                       "(exponential moving average) or ma (moving average over a window)")
    grokfast_alpha: float = _f(0.98, "Grokfast ema: decay of the moving average, in [0, 1)")
    grokfast_ema_lambda: float = _f(2.0, "Grokfast ema: weight of the filtered gradient added to g")
    grokfast_window: int = _f(100, "Grokfast ma: number of past gradients averaged")
    grokfast_ma_lambda: float = _f(5.0, "Grokfast ma: weight of the averaged gradient added to g")
    # --- budget and cadences ----------------------------------------------------------------
    epochs: int = _f(40_000, "full-batch epochs (one optimiser step each)")
    eval_every: int = _f(100, "evaluate train and test metrics every this many epochs")
    checkpoint_every: int = _f(0, "hand a checkpoint to the callbacks every this many epochs "
                               "(0: only at the end)")
    stop_after_grok: int = _f(0, "stop once grokked and held for this many evaluations (0: never)")
    measure_every: int = _f(0, "compute the progress measures (restricted/excluded loss, Gini, key "
                            "frequencies; grokcore/progress.py) every this many epochs, a multiple "
                            "of eval_every (0: off)")
    device: str = _f("auto", "cpu, cuda, cuda:N, or auto (cuda when there is one)")
    compile: str = _f("auto", "torch.compile the training step: on, off, or auto (on only for runs "
                      "long enough to win back the compilation, e.g. 40k epochs at p = 113; off "
                      "for demo-sized runs); speed only, results agree within float tolerance")
    # --- signal thresholds ------------------------------------------------------------------
    memorize_acc: float = _f(0.99, "train accuracy that counts as memorized")
    grok_acc: float = _f(0.99, "test accuracy that counts as generalized")
    grok_on: str = _f("test", "what the grok signal reads: 'test' (test accuracy) or 'unseen' "
                      "(accuracy on the test examples whose class (x^a, y^b) has no training "
                      "example: generalization, not lookup) (expmod)", tasks=EXPMOD)
    grok_min_delay: int = _f(5, "evaluations from memorization to the grok epoch for a run to "
                             "count as grokking (delayed generalization); fewer is "
                             "generalization without delay")
    spike_factor: float = _f(10.0, "a loss spike is a training loss above this multiple of its "
                             "running minimum")
    spike_floor: float = _f(0.0, "a loss spike needs the running minimum of the training loss "
                            "above this floor (0: the machine epsilon of --dtype, 1.2e-7 float32, "
                            "2.2e-16 float64: below it the right class's probability is 1 to the "
                            "model's precision, as after softmax collapse)")

    # ----------------------------------------------------------------------------------------
    def check_fields(self) -> "RunConfig":
        """Raise ConfigError on the first setting that is invalid whatever the task; return self.

        The task's own checks (and the task name) are ``grokcore.tasks.validate(cfg)``, which
        calls this first: this module knows no task.
        """
        _choice("dtype", self.dtype, DTYPES)
        _choice("loss_dtype", self.loss_dtype, DTYPES)
        _choice("act", self.act, ACTIVATIONS)
        _choice("split", self.split, SPLITS)
        _choice("encoding", self.encoding, ENCODINGS)
        _choice("gcd_sampling", self.gcd_sampling, GCD_SAMPLINGS)
        _choice("loss", self.loss, LOSSES)
        _choice("grokfast", self.grokfast, GROKFAST)
        _choice("grok_on", self.grok_on, GROK_ON)
        _choice("compile", self.compile, COMPILE)
        self._check_grokfast()
        self._check_model_and_optimiser()
        self._check_signals_device_measures()
        return self

    # The checks in parts, called in this order so that the first invalid setting is the one named.
    def _check_grokfast(self) -> None:
        """The Grokfast filter's settings."""
        if not 0.0 <= self.grokfast_alpha < 1.0:
            raise ConfigError(f"grokfast_alpha={self.grokfast_alpha} is outside [0, 1); the "
                              "Grokfast default is 0.98")
        if self.grokfast_window < 1:
            raise ConfigError(f"grokfast_window={self.grokfast_window} must be a positive integer "
                              "(Grokfast default 100)")
        for name in ("grokfast_ema_lambda", "grokfast_ma_lambda"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0 (Grokfast defaults: "
                                  "2 for ema, 5 for ma)")

    def _check_model_and_optimiser(self) -> None:
        """The split, the model's sizes, the budget and cadences, the optimiser."""
        if not 0.0 < self.frac_train < 1.0:
            raise ConfigError(f"frac_train={self.frac_train} is outside (0, 1); give a share such "
                              "as 0.3 (--frac)")
        for name in ("n_layers", "n_heads", "d_model", "d_head", "epochs", "eval_every"):
            _positive(name, getattr(self, name))
        if not self.attn_only:
            _positive("d_mlp", self.d_mlp)
        for name in ("warmup_epochs", "checkpoint_every", "stop_after_grok", "n_max", "n_examples",
                     "batch_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} is negative; use 0 to turn it off")
        if self.checkpoint_every % self.eval_every:
            raise ConfigError(f"checkpoint_every={self.checkpoint_every} is not a multiple of "
                              f"eval_every={self.eval_every}; checkpoints are taken at evaluations")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr={self.lr}, weight_decay={self.weight_decay}: need lr > 0 and "
                              "weight_decay >= 0")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name}={getattr(self, name)} is outside [0, 1)")

    def _check_signals_device_measures(self) -> None:
        """The signal thresholds, the device and the progress measures' cadence."""
        for name in ("memorize_acc", "grok_acc"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)} is outside (0, 1]")
        if self.spike_factor <= 1.0:
            raise ConfigError(f"spike_factor={self.spike_factor} must be above 1, e.g. 10")
        if not self.spike_floor >= 0.0:
            raise ConfigError(f"spike_floor={self.spike_floor} must be >= 0 (0: the machine "
                              "epsilon of --dtype)")
        if self.grok_min_delay < 0:
            raise ConfigError(f"grok_min_delay={self.grok_min_delay} is negative; give a number "
                              "of evaluations such as 5")
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ConfigError(f"device={self.device!r}: use cpu, cuda, cuda:N or auto")
        if self.measure_every < 0:
            raise ConfigError(f"measure_every={self.measure_every} is negative; use 0 to turn it off")
        if self.measure_every % self.eval_every:
            raise ConfigError(f"measure_every={self.measure_every} is not a multiple of "
                              f"eval_every={self.eval_every}; measures are taken at evaluations")

    # ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a dict (a Tune config, MLflow params); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; see --help for the names")
        return cls(**values)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


# The first field of each section of RunConfig and the section's title (the --help groups).
SECTION_STARTS = {"task": "task and data", "n_layers": "model", "lr": "optimiser and loss",
                  "epochs": "budget and cadences", "memorize_acc": "signal thresholds"}


# The machine epsilon of each dtype (torch.finfo(dtype).eps): the spike floor a floor of 0 means.
MACHINE_EPS = {"float32": 2.0 ** -23, "float64": 2.0 ** -52}
# Settings that only one value of another setting uses: the Grokfast filter's own settings.
USED_ONLY_WITH = {"grokfast_alpha": ("grokfast", "ema"),
                  "grokfast_ema_lambda": ("grokfast", "ema"),
                  "grokfast_window": ("grokfast", "ma"), "grokfast_ma_lambda": ("grokfast", "ma")}


def in_force(cfg: "RunConfig") -> dict[str, Any]:
    """The settings as the run uses them: those no option in force reads are left out (the
    Grokfast settings of another filter, or of none), and a value that stands for another is
    the one it stands for (``spike_floor`` 0: the machine epsilon of ``dtype``)."""
    def used(name: str) -> bool:
        option, value = USED_ONLY_WITH.get(name, (None, None))
        return option is None or getattr(cfg, option) == value

    values = {k: v for k, v in cfg.to_dict().items() if used(k)}
    if not values["spike_floor"]:
        values["spike_floor"] = MACHINE_EPS[cfg.dtype]
    return values


def fields_only_other_tasks_read(tasks: Iterable[str]) -> set[str]:
    """The task-specific fields that none of ``tasks`` reads (by their ``tasks`` metadata)."""
    tasks = set(tasks)
    return {f.name for f in dataclasses.fields(RunConfig)
            if "tasks" in f.metadata and not tasks & set(f.metadata["tasks"])}


def fields_by_section() -> list[tuple[str, list[dataclasses.Field]]]:
    """RunConfig's fields in order, cut into the sections its class body marks."""
    sections: list[tuple[str, list[dataclasses.Field]]] = []
    for f in dataclasses.fields(RunConfig):
        if f.name in SECTION_STARTS:
            sections.append((SECTION_STARTS[f.name], []))
        sections[-1][1].append(f)
    return sections


def field_flags(f: dataclasses.Field, alias: str | None = None) -> list[str]:
    """The option strings of a RunConfig field: ``--frac-train`` for ``frac_train``, after its
    short flag (the ``flag`` metadata: ``--frac``) and ``alias`` (a sweep's plural: ``--fracs``)
    where it has them."""
    flags = [f"--{f.name.replace('_', '-')}"]
    if "flag" in f.metadata:
        flags.insert(0, f"--{f.metadata['flag']}")
    if alias:
        flags.insert(0, f"--{alias}")
    return flags


def add_field_option(group, f: dataclasses.Field, *, shown: str | None,
                     default: Any = argparse.SUPPRESS, nargs: str | None = None,
                     alias: str | None = None) -> None:
    """The command-line option of RunConfig field ``f``, added to an argparse parser or group:
    typed as the field's default is (a boolean: ``--x`` / ``--no-x``), with the field's help
    text, followed by ``(default: SHOWN)`` unless ``shown`` is None. ``default``: the value when
    the option is not given (by default it stays out of the namespace); ``nargs``: how many
    values the option takes (not for a boolean). ``python -m grokcore train`` and the sweep
    scripts both add their options here, so an option is spelled and explained alike in both."""
    flags = field_flags(f, alias)
    text = f.metadata["help"] if shown is None else f"{f.metadata['help']} (default: {shown})"
    kind = type(f.default)
    if kind is bool:
        group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=default, help=text)
    else:
        group.add_argument(*flags, dest=f.name, type=kind, nargs=nargs, default=default,
                           metavar=kind.__name__.upper(), help=text)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not known; choose one of: {', '.join(allowed)} "
                          f"(--{name.replace('_', '-')})")


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(f"{name}={value} must be a positive integer")


def is_prime(n: int) -> bool:
    import sympy

    return n >= 2 and bool(sympy.isprime(n))
