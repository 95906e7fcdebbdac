"""``python -m grokcore train --replicates K [--no-pack]``: K replicates of one configuration,
as one pack (``grokcore.pack``) or one after another (the reference).

Replicate i trains with seed SEED+i and data seed DATA_SEED+i, as a sweep's ``--replicates``
does. With ``--out DIR`` replicate i writes ``DIR/replicate_<i>``: the same files as a single
run's ``--out`` folder, so each can also be read, or resumed, alone; ``--resume`` continues the
replicates from their checkpoints (a replicate whose folder holds its summary had ended).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from grokcore import records
from grokcore.config import ConfigError, RunConfig


def replicate_configs(cfg: RunConfig, replicates: int) -> list[RunConfig]:
    return [cfg.replace(seed=cfg.seed + i, data_seed=cfg.data_seed + i) for i in range(replicates)]


def replicate_folders(out: Path | None, replicates: int) -> list[Path | None]:
    return [out / f"replicate_{i}" if out else None for i in range(replicates)]


class PackProgress:
    """A tqdm bar over the pack's epochs, with how many members have ended and how many hold
    the threshold (as ``held`` on one run's bar)."""

    def __init__(self, total: int, start: int = 0):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=start, unit="epoch", dynamic_ncols=True,
                        file=sys.stderr)

    def on_round(self, pack, evaluated: list[int], ended: list[int], checkpoint: bool) -> None:
        self.bar.update(pack.epoch - self.bar.n)
        held = sum(m.signals.reached for m in pack.members)
        self.bar.set_postfix(training=len(pack.active), ended=len(pack.finished), held=held,
                             refresh=False)

    def on_end(self, pack, summaries: list[dict[str, Any]]) -> None:
        self.bar.close()


def load_members(configs: Sequence[RunConfig], folders: Sequence[Path | None], resume: bool):
    """The replicates' trainers, continued from their folders' checkpoints with ``resume``, and
    the indices of those that had ended."""
    import torch

    from grokcore.trainer import Trainer

    members, finished = [], []
    for i, (cfg, folder) in enumerate(zip(configs, folders)):
        trainer = Trainer(cfg)
        checkpoint = folder / records.CHECKPOINT_FILE if folder else None
        if resume and checkpoint.exists():
            trainer.load_state_dict(torch.load(checkpoint, weights_only=False))
            if (folder / records.SUMMARY_FILE).exists():
                finished.append(i)
        members.append(trainer)
    return members, finished


def train_replicates(cfg: RunConfig, args: argparse.Namespace) -> int:
    """Train the replicates; print one line each, and with --json the list of summaries."""
    from grokcore.records import RunDirectory
    from grokcore.pack import Pack

    try:
        if not args.no_pack:  # before the K configs are built: a million take tens of seconds
            from grokcore.pack_size import check_fits
            from grokcore.trainer import resolve_device

            check_fits(cfg, args.replicates, resolve_device(cfg.device))
        configs = replicate_configs(cfg, args.replicates)
        folders = replicate_folders(args.out, args.replicates)
        members, finished = load_members(configs, folders, args.resume)
        pack = None if args.no_pack else Pack(members, engine=args.pack_engine,
                                              finished=finished)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for member, folder in zip(members, folders):
        member.callbacks = [RunDirectory(folder)] if folder else []
    if pack is None:
        summaries = [m.summary() if i in finished else m.run() for i, m in enumerate(members)]
    else:
        if not args.no_progress:
            pack.callbacks.append(PackProgress(max(c.epochs for c in configs), pack.epoch))
        summaries = pack.run()
    print(format_replicates(configs, summaries, pack.engine if pack else None))
    if args.json:
        print(json.dumps(records.jsonable(summaries)))
    return 0


def format_replicates(configs: Sequence[RunConfig], summaries: Sequence[dict[str, Any]],
                     engine: str | None) -> str:
    how = f"as one pack ({engine} engine)" if engine else "one after another"
    lines = [f"{len(configs)} replicates, {how}:"]
    for i, (cfg, s) in enumerate(zip(configs, summaries)):
        lines.append(f"  {i}: seed {cfg.seed} data_seed {cfg.data_seed}  {s['status']:<11} "
                     f"{s['outcome']:<15} memorized {s['memorization_epoch']}  threshold "
                     f"{s['threshold_epoch']}  epochs {s['epochs_run']}  test acc "
                     f"{s['final_test_acc']:.4f}  {s['seconds']:.1f} s")
    return "\n".join(lines)
