from grokcore.config import RunConfig
from sweeps.console import format_outcomes
from sweeps.tracking import TrialOutcome


def test_the_closing_table_says_what_a_grokked_status_means():
    table = format_outcomes([
        TrialOutcome("k1", RunConfig(p=31, a=5, b=5), "grokked", "lookup", 40, 40, 120),
        TrialOutcome("k2", RunConfig(p=31, a=1, b=1), "grokked", "grokked", 600, 60, 680),
        TrialOutcome("k3", RunConfig(p=31, a=3, b=4), "failed")])
    header, lookup, grokked, failed = table.splitlines()
    assert header.split()[:5] == ["a", "b", "p", "status", "outcome"]
    assert lookup.split()[3:5] == ["grokked", "lookup"]
    assert grokked.split()[3:5] == ["grokked", "grokked"]
    assert failed.split()[3:5] == ["failed", "-"]


def test_tunes_warning_about_unstarted_trials_is_dropped_and_others_kept():
    import logging

    from sweeps.runner import quiet_unstarted_trials

    tune_analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    tune_analysis.addHandler(handler)
    try:
        quiet_unstarted_trials()
        quiet_unstarted_trials()  # a second sweep in the same process adds no second filter
        tune_analysis.warning("Failed to fetch metrics for 2 trial(s):\n- trial_0001: ...")
        tune_analysis.warning("Could not find best trial")
    finally:
        tune_analysis.removeHandler(handler)
    assert seen == ["Could not find best trial"]
    assert len(tune_analysis.filters) == 1
