"""Look inside a trained run from MLflow with TransformerLens hooks.

    python -m analysis.inspect RUN_ID [--tracking-uri URI] [--out DIR] [--log]

Loads the run's config (config.json artifact, else its params) and weights (model.pt), rebuilds
the model, runs it on every input with ``run_with_cache`` and prints its mechanistic summary:
train/test accuracy, key frequencies and their share of the MLP variance, restricted and
excluded loss, the Gini coefficients of W_E and W_L in the Fourier basis, and each head's mean
attention from '=' to x, y and '='. Figures go to DIR (default ``inspect-<run id>``):
attention.png, embedding_fourier.png, neuron_fourier.png, unembed_fourier.png; ``--log`` also
stores them in the run under ``inspect/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from analysis.runs import AnalysisError, client_for, fail, load_model
from grokcore.records import DEFAULT_TRACKING_URI


def summarize(cfg, dataset, model) -> tuple[dict, str]:
    import torch

    from grokcore.progress import progress_measures

    measures = progress_measures(model, cfg, dataset)
    name = "blocks.0.attn.hook_pattern"
    with torch.no_grad():
        logits, cache = model.run_with_cache(dataset.inputs, names_filter=lambda n: n == name)
    pred = logits[:, -1].argmax(dim=-1)
    correct = (pred == dataset.labels).double()
    train_acc = float(correct[dataset.train_idx].mean())
    test_acc = float(correct[dataset.test_idx].mean()) if len(dataset.test_idx) else float("nan")
    attention = cache[name][:, :, -1].mean(dim=0)  # [heads, positions]
    lines = [
        f"task                {cfg.task} a={cfg.a} b={cfg.b} p={cfg.p} dtype={cfg.dtype} "
        f"frac={cfg.frac_train:g} seed={cfg.seed}",
        f"accuracy            train {train_acc:.4f}  test {test_acc:.4f}",
        f"key frequencies     {' '.join(map(str, measures['key_freqs'])) or 'none'}",
        f"variance explained  {measures['key_freq_explained']:.4f} of the MLP variance",
        f"restricted loss     {measures['restricted_loss']:.4g}",
        f"excluded loss       {measures['excluded_loss']:.4g}",
        f"Gini W_E / W_L      {measures['gini_embed']:.4f} / {measures['gini_unembed']:.4f}",
        "attention from '='  " + "; ".join(
            f"head {h}: " + " ".join(f"{v:.2f}" for v in row.tolist())
            for h, row in enumerate(attention)) + "  (to x, y, '=')",
    ]
    return measures, "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.inspect",
                                     description="Mechanistic summary of a trained run stored in "
                                                 "MLflow: key frequencies, attention, restricted "
                                                 "and excluded loss.")
    parser.add_argument("run_id", help="MLflow run id of a trial (it must hold model.pt)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI})")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the figures (default: inspect-<run id>)")
    parser.add_argument("--log", action="store_true", help="also store the figures in the run")
    args = parser.parse_args(argv)
    from grokcore.tasks import TASKS  # torch: not for --help

    try:
        client = client_for(args.tracking_uri)
        cfg, dataset, model = load_model(client, args.run_id)
        if not TASKS[cfg.task].progress_measures_apply(cfg):
            raise AnalysisError("inspect needs a run with progress measures: an expmod run with "
                                "2 operands and an MLP")
    except AnalysisError as err:
        return fail(str(err))
    _, text = summarize(cfg, dataset, model)
    print(text)
    from grokcore.tasks import expmod_figures as figs

    out = args.out or Path(f"inspect-{args.run_id}")
    paths = [figs.plot_attention_patterns(model, cfg, dataset, out / "attention.png"),
             figs.plot_embedding_fourier(model, cfg, out / "embedding_fourier.png"),
             figs.plot_neuron_fourier(model, cfg, dataset, out / "neuron_fourier.png"),
             figs.plot_unembed_fourier(model, cfg, out / "unembed_fourier.png")]
    if args.log:
        for path in paths:
            client.log_artifact(args.run_id, str(path), artifact_path="inspect")
    print(f"figures             {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
