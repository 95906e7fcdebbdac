"""Search for the settings that grok fastest: Optuna's TPE sampler on Ray Tune, MLflow logging.

    python -m sweeps.search --p 31 --frac 0.5 --lr 3e-3 --weight-decay 3 --epochs 3000 \\
        --eval-every 10 --num-samples 40 --max-concurrent 2 --seed 0
    python -m sweeps.search --search lr weight_decay grokfast --range lr=1e-4:3e-2 ...
    python -m sweeps.search --dry-run            # the search space and the baseline; runs nothing

Every RunConfig field is an option (one value each): together they are the *base* run. Its
values of the searched settings are the *baseline*, enqueued as the study's first trial, so the
search reports how far it got beyond the plain configuration. ``--seed`` seeds the sampler; the
weight seed of the runs is ``--model-seed``.

The objective, minimized: the trial's grok epoch; a trial that does not grok (budget reached, or
diverged) scores ``--penalty-factor`` x ``--epochs`` (2 x the budget by default), which is worse
than any grok epoch. A trial that crashes (after its retries) is a FAILed Optuna trial and
scores nothing. The trials run through ``sweeps.runner.run_sweep`` (the grid's trainable,
stopping, checkpoints, retries and per-trial MLflow runs); this package only adds the sampler,
the scoring and the summary.

The Optuna study lives in SQLite (``--optuna-storage``, study name = the sweep's name unless
``--study-name``): ``--resume`` continues an interrupted sweep (Tune restores the sampler), and a
new sweep with an existing ``--study-name`` continues that study (TPE learns from its trials).

At the end: a table of the trials, the best configuration beside the baseline, and which
settings drive the grok epoch (``optuna.importance.get_param_importances``, PED-ANOVA by
default), also stored in MLflow as a summary run (tag ``run_kind=search_summary``) with the
importances as metrics ``importance_<name>``, the best settings as params ``best_<name>`` and
``search_summary.json``. Each trial's run gets the metric ``grok_score`` and the tag
``optuna_trial``.

The package: :mod:`~sweeps.search.space` (the space and the objective),
:mod:`~sweeps.search.searcher` (``GrokSearcher``; imports Ray and Optuna),
:mod:`~sweeps.search.summary` (best, baseline, importances, MLflow) and :mod:`~sweeps.search.cli`
(the command line and ``run_search``). Importing the package imports no Ray: ``GrokSearcher`` and
``make_searcher`` are loaded on first use.
"""

from __future__ import annotations

from sweeps.search.cli import DEFAULT_STORAGE, build_parser, main, run_search
from sweeps.search.space import (OPTUNA_TRIAL, PARAMS, SCORE, NumberedSpace, Param, SearchSpace,
                                 build_space, grok_score)
from sweeps.search.summary import (SEARCH_SUMMARY_FILE, SearchSummary, TrialScore, format_summary,
                                   log_summary_to_mlflow, summarize_study)

__all__ = ["DEFAULT_STORAGE", "OPTUNA_TRIAL", "PARAMS", "SCORE", "SEARCH_SUMMARY_FILE",
           "GrokSearcher", "NumberedSpace", "Param", "SearchSpace", "SearchSummary", "TrialScore",
           "build_parser", "build_space", "format_summary", "grok_score", "log_summary_to_mlflow",
           "main", "make_searcher", "run_search", "summarize_study"]


def __getattr__(name: str):
    """``GrokSearcher`` and ``make_searcher`` come from :mod:`sweeps.search.searcher`, imported
    on first use (it imports Ray and Optuna)."""
    if name in ("GrokSearcher", "make_searcher"):
        from sweeps.search import searcher

        return getattr(searcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
