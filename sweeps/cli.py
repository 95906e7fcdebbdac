"""Command-line plumbing shared by the sweep scripts: grid options, sweep options, ``sweep_main``.

Nothing here imports Ray, MLflow or torch at module level, so ``--help``, ``--dry-run`` and a bad
grid answer at once and a bad grid leaves nothing behind; :func:`sweep_main` imports the runner
only to run.

Every RunConfig field is an option that takes ONE OR MORE values; the grid is the product of all
of them (``--lr 1e-3 3e-3 --seeds 0 1`` is four trials). A script may add coupled "rows" (for
expmod: the (a, b, p) rows of Table 1 or ``--pairs``) that are crossed with the rest; see
:func:`sweeps.grid.product_grid`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from grokcore.config import (ConfigError, RunConfig, add_field_option, fields_by_section,
                             fields_only_other_tasks_read)
from grokcore.records import DEFAULT_TRACKING_URI
from sweeps.console import format_grid, format_outcomes
from sweeps.figures_after import FIGURE_MODES
from sweeps.knobs import check_environment
from sweeps.grid import FIELD_NAMES, common_settings, prepare_configs, with_replicates
from sweeps.packing import pack_option

# Plural spellings for the fields a grid usually spans; the field's own name works too.
PLURAL = {"p": "primes", "dtype": "dtypes", "frac_train": "fracs", "seed": "seeds"}


def add_grid_options(parser: argparse.ArgumentParser, tasks: Iterable[str],
                     defaults: Mapping[str, Any] | None = None, skip: Iterable[str] = (),
                     default_help: Mapping[str, str] | None = None) -> None:
    """One option per RunConfig field, each taking one or more values (booleans: one).

    ``tasks`` are the tasks the script sweeps: the fields only other tasks read are left out.
    ``defaults`` replaces a field's default for this script (shown in --help); a default of None
    means "not given" so the script can tell (e.g. to fall back to a table of rows);
    ``default_help`` then says in words what happens by default.
    """
    default_help = dict(default_help or {})
    defaults = dict(defaults or {})
    skip = set(skip) | fields_only_other_tasks_read(tasks)
    for i, (title, fields) in enumerate(fields_by_section()):
        note = " (every run setting takes one or more values; the grid is their product)"
        group = parser.add_argument_group(title + (note if i == 0 else ""))
        _add_field_options(group, [f for f in fields if f.name not in skip], defaults,
                           default_help)
    parser.add_argument_group("replicates").add_argument(
        "--replicates", type=int, default=1, metavar="N",
        help="run every grid point N times: replicate i uses weight seed SEED+i and split seed "
             "DATA_SEED+i (one value each), so a row's spread covers initialisation and split "
             "(default: 1)")


def _add_field_options(group, fields: Sequence[dataclasses.Field], defaults: Mapping[str, Any],
                       default_help: Mapping[str, str]) -> None:
    """The options of these fields, in one --help group (an argparse argument group); see
    add_grid_options."""
    for f in fields:
        default = defaults.get(f.name, f.default)
        if isinstance(f.default, bool):  # one value: --x / --no-x
            add_field_option(group, f, shown=None, default=default, alias=PLURAL.get(f.name))
            continue
        shown = default_help.get(f.name, "none" if default is None else default)
        add_field_option(group, f, shown=str(shown), nargs="+", alias=PLURAL.get(f.name),
                         default=None if default is None else [default])


def add_sweep_options(parser: argparse.ArgumentParser, experiment: str, grid: bool = True) -> None:
    """Where and how the grid runs: Ray, MLflow, resources, resume, faults (and, for a grid
    rather than a search, packs)."""
    g = parser.add_argument_group("sweep")
    g.add_argument("--address", default=None,
                   help="Ray cluster to run on: 'auto' (the cluster started on this machine with "
                        "`ray start --head`), HOST:PORT of a head node, or leave out for a local "
                        "Ray started and stopped by this command")
    g.add_argument("--experiment", default=experiment,
                   help=f"MLflow experiment name (default: {experiment})")
    g.add_argument("--name", default=None,
                   help="name of this sweep: its folder under --storage and the MLflow tag "
                        "'sweep' (default: EXPERIMENT-DATE-TIME; with --resume: the latest "
                        "sweep of the experiment under --storage)")
    g.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                   help=f"MLflow tracking URI: a SQLite file (default: {DEFAULT_TRACKING_URI} in "
                        "the working directory) or a server such as http://127.0.0.1:5000")
    g.add_argument("--storage", default="ray_results",
                   help="folder (or URI) for Ray Tune's trial state and checkpoints; on a "
                        "cluster it must be shared by all nodes, e.g. NFS or s3:// "
                        "(default: ./ray_results)")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep: finished trials are kept, unfinished "
                        "and errored ones continue from their last checkpoint (the grid is the "
                        "stored one)")
    g.add_argument("--dry-run", action="store_true",
                   help="validate, print the grid and its size, and launch nothing")
    g.add_argument("--write-grid", type=Path, default=None, metavar="FILE",
                   help="write the validated grid (a JSON list of RunConfigs, as the sweep "
                        "would run them) to FILE and launch nothing: for `python -m grokcore "
                        "grid FILE` on a machine without Ray or MLflow, then "
                        "`python -m sweeps.import_runs`")
    g.add_argument("--retries", type=int, default=2,
                   help="times a crashed trial is restarted from its last checkpoint (default: 2)")
    g.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs reserved per trial; torch uses that many threads (default: 1)")
    g.add_argument("--gpus-per-trial", type=gpu_share, default=None, metavar="GPUS",
                   help="GPUs per trial, fractions allowed (0.25: four trials share a GPU); "
                        "with device auto a trial then trains on cuda. Default auto: when every "
                        "node has a GPU, a share that lets as many trials use a node's GPUs as "
                        "its CPUs run (1 GPU, 16 CPUs: 0.0625); else 0, trials train on CPUs")
    g.add_argument("--max-concurrent", type=int, default=0,
                   help="at most this many trials at once (default 0: as many as the "
                        "resources allow)")
    g.add_argument("--figures", choices=FIGURE_MODES, default="after",
                   help="who draws each trial's figures: 'after' the trial has ended, the "
                        "driver, at the lowest CPU priority, so no trial waits for them (the "
                        "sweep ends when all are logged); 'trial', the trial itself; 'none' "
                        "(default: after)")
    if grid:
        _add_grid_only_options(g)
    g.add_argument("--progress-every", type=float, default=30.0,
                   help="seconds between progress lines of a running trial; 0 prints every "
                        "evaluation (default: 30)")
    g.add_argument("--fail-at-epoch", type=int, default=0,
                   help="FOR TESTS: make trials raise at the first evaluation at or after this "
                        "epoch, on their first attempt only (default 0: never)")
    g.add_argument("--fail-trials", type=int, nargs="+", default=[0], metavar="INDEX",
                   help="FOR TESTS: grid indices of the trials --fail-at-epoch applies to "
                        "(default: 0)")


def _add_grid_only_options(g) -> None:
    """The sweep options a grid has and a search does not, added to the argument group ``g``:
    --from-grid, --skip-ended, --pack."""
    g.add_argument("--from-grid", type=Path, nargs="+", default=None, metavar="FILE",
                   help="run the RunConfigs of these grid files (--write-grid's, or a "
                        "sweep's grid.json), in order, instead of a grid built from the "
                        "options above (give none of those)")
    g.add_argument("--skip-ended", action="store_true",
                   help="leave out the runs whose configuration already has an ended run in "
                        "the experiment (the same config_hash: trained by another sweep, or "
                        "elsewhere and logged with python -m sweeps.import_runs)")
    g.add_argument("--pack", type=pack_option, default="off", metavar="K|auto|off",
                   help="train up to K runs of the grid together as one trial (a pack; each "
                        "run is still its own MLflow run): on a GPU as one stacked model, "
                        "on CPUs sharing a trial's overhead; runs go to the same pack only "
                        "where grokcore.pack allows (same shapes and optimizer settings). "
                        "auto: on cuda the size measured to help on the GPU; on CPUs off, "
                        "where packs were measured not to shorten a sweep "
                        "(sweeps/packing.py) (default: off)")


def gpu_share(text: str) -> float | None:
    """--gpus-per-trial: ``auto`` (None, settled from the cluster) or a number >= 0."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not auto or a number of GPUs >= 0")
    return value


def values_from_args(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The value list of every RunConfig option that was given or has a default."""
    values = {}
    for name in FIELD_NAMES:
        value = getattr(args, name, None)
        if value is None:
            continue
        values[name] = value if isinstance(value, list) else [value]
    return values


def grid_of(args: argparse.Namespace, parser: argparse.ArgumentParser,
            build_grid: Callable[[argparse.Namespace], list[RunConfig]],
            replicates: int) -> list[RunConfig]:
    """The grid: the options' product (``build_grid``), or the RunConfigs of --from-grid."""
    files = getattr(args, "from_grid", None)
    if not files:
        return with_replicates(build_grid(args), replicates)
    given = [name for name in [*FIELD_NAMES, "replicates", "pairs"]
             if hasattr(args, name) and getattr(args, name) != parser.get_default(name)]
    if given:
        raise ConfigError(f"--from-grid runs the grid files as they are; leave out "
                          f"--{given[0].replace('_', '-')} (or write a new grid with it)")
    from grokcore.pack_grid import load_grid

    return [cfg for path in files for cfg in load_grid(path)]


def without_ended(configs: Sequence[RunConfig], tracking_uri: str,
                  experiment: str) -> list[RunConfig]:
    """``configs`` less those with an ended run of the same config_hash in the experiment;
    ConfigError when none is left (nothing to run)."""
    from analysis.runs import ended_config_hashes
    from sweeps.trial import config_hash

    ended = ended_config_hashes(tracking_uri, experiment)
    left = [c for c in configs if config_hash(c) not in ended]
    print(f"--skip-ended: {len(configs) - len(left)} of {len(configs)} runs already ended in "
          f"experiment {experiment!r}; {len(left)} to run")
    if not left:
        raise ConfigError(f"every run of the grid has an ended run in experiment {experiment!r}: "
                          "nothing to run")
    return left


def check_sweep_args(args: argparse.Namespace, n_trials: int) -> None:
    if args.retries < 0:
        raise ConfigError(f"--retries {args.retries} is negative")
    if args.cpus_per_trial <= 0:
        raise ConfigError("--cpus-per-trial must be > 0")
    if args.max_concurrent < 0:
        raise ConfigError("--max-concurrent must be >= 0 (0: no limit)")
    if args.progress_every < 0:
        raise ConfigError("--progress-every must be >= 0 seconds (0: a line per evaluation)")
    if args.fail_at_epoch < 0:
        raise ConfigError("--fail-at-epoch must be >= 0 (0: no fault injection)")
    bad = [i for i in args.fail_trials if not 0 <= i < n_trials]
    if args.fail_at_epoch and bad:
        raise ConfigError(f"--fail-trials {bad} outside the grid's indices 0..{n_trials - 1}")


def resources_from_args(args: argparse.Namespace):
    """The sweep options --cpus-per-trial, --gpus-per-trial, --max-concurrent and --retries as
    the runner's Resources (imports the runner, hence Ray)."""
    from sweeps.runner import Resources

    return Resources(cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                     max_concurrent=args.max_concurrent, retries=args.retries)


def print_where_to_look(result) -> None:
    """The commands to go further (``sweeps.sweep_run.go_further``): the MLflow UI and its
    page, the grok table, one trial's figures."""
    from sweeps.sweep_run import go_further

    if result.table_note:
        print(f"note: no grok table in MLflow ({result.table_note})")
    print("\n".join(go_further(result.tracking_uri, result.experiment, result.experiment_id,
                               result.outcomes)))


def sweep_main(parser: argparse.ArgumentParser,
               build_grid: Callable[[argparse.Namespace], list[RunConfig]],
               argv: Sequence[str] | None = None, always: Sequence[str] | None = None) -> int:
    """The body of a sweep script: parse, build and validate the grid, dry-run or run it.

    ``build_grid(args)`` turns the parsed options into RunConfigs (raise ConfigError on a bad
    combination). Exit codes: 0 all trials ended (reached, not_reached or diverged), 1 some trial
    failed or the sweep was interrupted, 2 invalid settings (nothing started, nothing written).
    ``always``: the columns the grid and outcome tables always show (default: the task's
    ``table_keys``).
    """
    args = parser.parse_args(argv)
    try:
        replicates = getattr(args, "replicates", 1)
        for name, flag in (("seed", "--seeds"), ("data_seed", "--data-seed")):
            if replicates > 1 and len(getattr(args, name, None) or []) > 1:
                raise ConfigError(f"give --replicates or several {flag}, not both (replicate i "
                                  f"uses {flag.strip('-').rstrip('s')} + i)")
        check_environment()
        configs = prepare_configs(grid_of(args, parser, build_grid, replicates),
                                  args.gpus_per_trial)
        check_sweep_args(args, len(configs))
        if getattr(args, "skip_ended", False) and not args.resume:
            configs = without_ended(configs, args.tracking_uri, args.experiment)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.write_grid:
        args.write_grid.parent.mkdir(parents=True, exist_ok=True)
        args.write_grid.write_text(json.dumps([c.to_dict() for c in configs], indent=1))
        print(f"{len(configs)} runs written to {args.write_grid}")
        return 0
    if args.dry_run:
        print(format_grid(configs, always))
        if replicates > 1:
            print(f"{replicates} replicates of each setting: replicate i trains with seed "
                  f"{configs[0].seed}+i and data_seed {configs[0].data_seed}+i")
        print(f"{len(configs)} trials; shared settings: {common_settings(configs)}")
        return 0

    from sweeps.runner import SweepError, run_sweep
    from sweeps.trial import FaultInjection

    fault = (FaultInjection(at_epoch=args.fail_at_epoch, trials=tuple(args.fail_trials))
             if args.fail_at_epoch else None)
    try:
        result = run_sweep(
            configs, experiment=args.experiment, name=args.name, tracking_uri=args.tracking_uri,
            storage=args.storage, address=args.address, resume=args.resume,
            resources=resources_from_args(args), fault=fault,
            progress_every_s=args.progress_every, figures=args.figures, pack=args.pack)
    except (ConfigError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return print_sweep_end(result, always)


def print_sweep_end(result, always: Sequence[str] | None = None) -> int:
    """A sweep's end on the console: the outcomes, where to look, what did not run; the exit
    code (1 when a trial failed or the sweep was interrupted, else 0)."""
    print()
    print(format_outcomes(result.outcomes, always))
    what = (f"runs in {result.packs} pack trial{'s' if result.packs != 1 else ''}"
            if result.packs is not None else "trials")
    print(f"\n{len(result.outcomes)} {what} in {result.seconds:.0f} s "
          f"(sweep {result.name!r}, MLflow experiment {result.experiment!r})")
    print_where_to_look(result)
    missing = result.not_in_stored_grid
    if missing:
        print(f"note: --resume ran the grid stored with sweep {result.name!r}; {len(missing)} "
              f"trial(s) of the settings given now are not in it and did not run (first: "
              f"{missing[0]}): run them as a new sweep, without --resume")
    unfinished = sum(o.status == "unfinished" for o in result.outcomes)
    if unfinished:
        print(f"{unfinished} trials did not finish (interrupted): run the same command with "
              f"--resume --name {result.name} to continue them")
    return 1 if any(o.status in ("failed", "unfinished") for o in result.outcomes) else 0
