"""The searcher: Optuna's TPE (Ray Tune's ``OptunaSearch``), scored on each trial's end summary.

This module imports Ray and Optuna; :mod:`sweeps.search` imports it only to run a search.
"""

from __future__ import annotations

import pickle

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from grokcore.records import current_status
from sweeps.search.space import OPTUNA_TRIAL, SCORE, NumberedSpace, SearchSpace, grok_score


class GrokSearcher(Searcher):
    """Ray Tune searcher: Optuna's TPE (``OptunaSearch``) scored on each trial's end summary.

    Tune sees no metric (the trainable reports none that means "grok epoch" at every
    evaluation); at a trial's end this searcher reads the summary the trainable reported
    (``end/summary/status``, ``end/summary/threshold_epoch``), computes the score and tells Optuna.
    Each Optuna trial also gets user attributes: ``tune_trial_id``, ``status``,
    ``threshold_epoch``, ``baseline``, so the study alone ties back to Tune and MLflow.

    Which Optuna trial a Tune trial is comes from the trial's config (the space is a
    :class:`~sweeps.search.space.NumberedSpace`); the attributes are written through the study's
    storage (public API only).
    """

    def __init__(self, space: SearchSpace, *, seed: int, storage: str, study_name: str,
                 penalty_factor: float = 2.0, baseline: bool = True, startup_trials: int = 10):
        super().__init__(metric=None, mode=None)
        self.space = space
        self.penalty_factor = penalty_factor
        self.penalty = penalty_factor * space.base.epochs
        self.storage = optuna.storages.RDBStorage(storage)
        study = optuna.create_study(storage=self.storage, study_name=study_name,
                                    direction="minimize", load_if_exists=True)
        self.study_id = self.storage.get_study_id_from_name(study_name)
        known = study.trials
        if baseline and not known:  # OptunaSearch asks the same stored study: it comes first
            study.enqueue_trial(space.baseline_point(), user_attrs={"baseline": True})
        # A continued study gets another sampler seed, or its random start-up trials would
        # repeat the earlier sweep's.
        sampler = optuna.samplers.TPESampler(seed=seed + len(known),
                                             n_startup_trials=startup_trials)
        self.inner = OptunaSearch(space=NumberedSpace(space), metric=SCORE, mode="min",
                                  sampler=sampler, study_name=study_name, storage=self.storage)
        self.numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number

    def _set_user_attr(self, trial_id: str, key: str, value) -> None:
        number = self.numbers[trial_id]
        ot_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        self.storage.set_trial_user_attr(ot_id, key, value)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str):
        suggestion = self.inner.suggest(trial_id)
        if isinstance(suggestion, dict) and OPTUNA_TRIAL in suggestion:
            self.numbers[trial_id] = suggestion[OPTUNA_TRIAL]
            self._set_user_attr(trial_id, "tune_trial_id", trial_id)
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass  # scored at the end only: before grokking the curves say little (no pruning)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        known = trial_id in self.numbers
        status = (result or {}).get("end/summary/status")
        if error or status is None or not known:
            if known:
                self._set_user_attr(trial_id, "status", "failed")
            self.inner.on_trial_complete(trial_id, None, error=True)
            return
        held = result.get("end/summary/threshold_epoch", result.get("end/summary/grok_epoch"))
        self._set_user_attr(trial_id, "status", current_status(status))
        self._set_user_attr(trial_id, "threshold_epoch", held)
        score = grok_score(status, held, self.space.base.epochs, self.penalty_factor)
        self.inner.on_trial_complete(trial_id, {SCORE: score})

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__, fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))


def make_searcher(space: SearchSpace, **kwargs) -> GrokSearcher:
    """A GrokSearcher, built on Optuna's TPE. See GrokSearcher's docstring."""
    return GrokSearcher(space, **kwargs)
