"""Command line for one run: ``python -m grokcore train [options]`` and ``python -m grokcore tasks``.

Every RunConfig field is an option (``--frac`` for frac_train; ``--seed`` for the weight seed),
with the help text written beside the field in grokcore/config.py. ``--task`` applies that task's
defaults (and ``--preset`` a named preset) to every option not given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from grokcore import records
from grokcore.config import ConfigError, RunConfig, add_field_option, fields_by_section
from grokcore.pack import ENGINES
from grokcore.pack_grid import add_grid_parser, grid_main

# torch, the model and the trainer are imported inside main(), after the settings are validated:
# a typo is reported in well under a second, not after the seconds that the imports take.


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and a hint (exit 2), not the usage text: the
    sweep scripts and the analysis commands have many options, and their usage would bury the
    error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field. Options not given stay out of the namespace, so that
    ``config_from_args`` can apply the task's defaults and the preset beneath them."""
    groups = []
    for title, fields in fields_by_section():
        group = parser.add_argument_group(title)
        groups.append(group)
        for f in fields:
            add_field_option(group, f, shown=str(f.default))
    groups[0].add_argument("--preset", default=None,  # beside the task it belongs to
                           help="named settings of a seed experiment (see README), under the "
                                "options given")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from grokcore.tasks import PRESETS, config_for

    names = {f.name for f in dataclasses.fields(RunConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    preset = getattr(args, "preset", None)
    if preset is not None and "task" not in given:
        given["task"] = PRESETS[preset][0] if preset in PRESETS else "expmod"
    return config_for(given.pop("task", "expmod"), preset, **given)


class ProgressBar:
    """A tqdm bar over epochs, showing the latest accuracies and the signals so far."""

    def __init__(self, total: int, start: int = 0):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=start, unit="epoch", dynamic_ncols=True, file=sys.stderr)

    def on_eval(self, trainer, row: dict[str, float], checkpoint: bool) -> None:
        self.bar.update(row["epoch"] - self.bar.n)
        sig = trainer.signals
        self.bar.set_postfix(train=f"{row['train_acc']:.3f}", test=f"{row['test_acc']:.3f}",
                             loss=f"{row['train_loss']:.2e}", mem=sig.memorization_epoch,
                             held=sig.grok_epoch, refresh=False)

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        self.bar.close()


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"status              {summary['status']}",
        f"memorization epoch  {summary['memorization_epoch']}",
        f"outcome             {summary['outcome']}",
        f"threshold epoch     {summary['threshold_epoch']}",
        f"threshold delay     {summary['threshold_delay']}",
        f"loss spikes         {summary['n_spikes']}",
        f"final train/test    acc {summary['final_train_acc']:.4f} / {summary['final_test_acc']:.4f}"
        f"   loss {summary['final_train_loss']:.3e} / {summary['final_test_loss']:.3e}",
        f"epochs run          {summary['epochs_run']} in {summary['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grokcore",
                                     description="Train a small transformer on an algorithmic task "
                                                 "and report when it memorizes and when it groks.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one configuration",
                           description="Train one configuration full-batch with AdamW.")
    add_config_options(train)
    train.add_argument("--json", action="store_true",
                       help="print a JSON summary as the last line of output")
    train.add_argument("--out", type=Path, default=None,
                       help="folder for what the run leaves behind (the same files as a sweep "
                            "trial: history.csv, summary.json, config.json, dataset_stats.json, "
                            "model.pt, figures) and its checkpoint.pt")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.pt (needs --out and the same settings)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch threads on the CPU (default: torch's, one per core; on a "
                            "machine busy with other work, 1 can be many times faster)")
    packs = train.add_argument_group("replicates (a pack: several runs trained as one model)")
    packs.add_argument("--replicates", type=int, default=1, metavar="K",
                       help="train K replicates: replicate i with seed SEED+i and data seed "
                            "DATA_SEED+i (as a sweep's --replicates), as one pack; --json then "
                            "prints a list of K summaries, --out DIR writes DIR/replicate_<i> "
                            "(default: 1)")
    packs.add_argument("--no-pack", action="store_true",
                       help="train the replicates one after another instead (the reference)")
    packs.add_argument("--pack-engine", choices=ENGINES, default="auto",
                       help="how a pack trains: 'stacked' (one batched model: what a GPU "
                            "needs), 'loop' (each member's own step in turn: a CPU gains "
                            "nothing from stacking) or auto (stacked on cuda, else loop; "
                            "grokcore/pack.py)")
    sub.add_parser("tasks", help="list the tasks")
    add_grid_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "grid":
        return grid_main(args)
    if args.command == "tasks":
        from grokcore.tasks import TASKS

        for name, task in sorted(TASKS.items()):
            print(f"{name:12s} {(task.__doc__ or type(task).__module__).strip().splitlines()[0]}")
        return 0
    try:
        from grokcore.tasks import validate

        cfg = validate(config_from_args(args))
        if args.resume and args.out is None:
            raise ConfigError("--resume needs --out, the folder that holds checkpoint.pt")
        if args.replicates < 1:
            raise ConfigError(f"--replicates {args.replicates}: give 1 or more")
        if args.threads is not None:
            if args.threads < 1:
                raise ConfigError(f"--threads {args.threads}: give 1 or more")
            import torch

            torch.set_num_threads(args.threads)
        if args.replicates > 1 or args.no_pack:
            from grokcore.pack_cli import train_replicates

            return train_replicates(cfg, args)
        import torch

        from grokcore.trainer import Trainer

        callbacks: list[Any] = []
        trainer = Trainer(cfg)
        run_dir = records.RunDirectory(args.out) if args.out else None
        if args.resume and run_dir.checkpoint.exists():
            trainer.load_state_dict(torch.load(run_dir.checkpoint, weights_only=False))
        if not args.no_progress:
            callbacks.append(ProgressBar(cfg.epochs, start=trainer.epoch))
        if run_dir:
            callbacks.append(run_dir)
        trainer.callbacks = callbacks
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = trainer.run()
    print(format_summary(summary))
    if args.json:
        print(json.dumps(summary))
    return 0
