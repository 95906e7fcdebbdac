import pytest

from grokcore.config import RunConfig
from sweeps.console import format_grid, format_outcomes
from sweeps.tracking import TrialOutcome


def test_the_closing_table_names_outcomes_sorted_by_p_a_b_with_a_legend():
    table = format_outcomes([
        TrialOutcome("k1", RunConfig(p=31, a=5, b=5), "reached", "lookup", 40, 40, 120,
                     unseen_acc=None, leakage=1.0),
        TrialOutcome("k2", RunConfig(p=31, a=1, b=1), "reached", "grokked", 600, 60, 680,
                     unseen_acc=0.9958, leakage=0.0),
        TrialOutcome("k3", RunConfig(p=23, a=3, b=4), "failed"),
        TrialOutcome("k4", RunConfig(p=31, a=4, b=5), "reached", "lookup", 300, 60, 380,
                     unseen_acc=0.3333, leakage=0.987)])
    header, *rows, legend = table.splitlines()
    assert header.split() == ["a", "b", "p", "outcome", "memorized", "threshold", "epoch",
                              "unseen", "acc", "leakage", "epochs"]
    # sorted by (p, a, b); the trial without an outcome shows its status
    assert [r.split() for r in rows] == [
        ["3", "4", "23", "failed", "none", "none", "-", "-", "none"],
        ["1", "1", "31", "grokked", "60", "600", "0.996", "0.00", "680"],
        ["4", "5", "31", "lookup", "60", "300", "0.333", "0.99", "380"],
        ["5", "5", "31", "lookup", "40", "40", "-", "1.00", "120"]]
    assert "grokked" not in " ".join(r for r in rows if "lookup" in r)
    assert legend.startswith("grokked: test acc reached 0.99 at least 5 evaluations after")
    assert "lookup: reached, but unseen-class acc did not" in legend


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


def test_the_resources_line_says_how_many_trials_fit_and_when_gpus_stay_idle():
    from sweeps.runner import Resources

    assert Resources().describe({"CPU": 2.0}) == ["Ray: 2 CPU, 0 GPU; each trial 1 CPU, 2 at once"]
    assert Resources(cpus_per_trial=2, gpus_per_trial=0.25, max_concurrent=3).describe(
        {"CPU": 16.0, "GPU": 1.0}) == ["Ray: 16 CPU, 1 GPU; each trial 2 CPU and 0.25 GPU, 3 at once"]
    assert Resources(gpus_per_trial=0.5).describe({"CPU": 16.0, "GPU": 1.0})[0].endswith("2 at once")
    idle = Resources().describe({"CPU": 16.0, "GPU": 2.0})
    assert len(idle) == 2 and idle[1].startswith("note: the cluster's 2 GPU(s) stay idle")


def test_gpus_per_trial_auto_shares_the_gpus_only_when_every_node_has_one():
    from sweeps.runner import Resources

    gpu_node, cpu_node = {"CPU": 16.0, "GPU": 1.0}, {"CPU": 8.0}
    assert Resources().settle([gpu_node]).gpus_per_trial == 0.0625  # 16 trials share the GPU
    assert Resources().settle([gpu_node, cpu_node]).gpus_per_trial == 0  # the CPU node would idle
    assert Resources().settle([cpu_node]).gpus_per_trial == 0
    assert Resources().settle([{"CPU": 2.0, "GPU": 4.0}]).gpus_per_trial == 1  # never above 1
    assert Resources(cpus_per_trial=2).settle([{"CPU": 8.0, "GPU": 2.0}]).gpus_per_trial == 0.5
    # The smallest node's share, rounded down to what Ray counts, so every node's trials fit.
    share = Resources().settle([{"CPU": 3.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 2.0}]).gpus_per_trial
    assert share == 0.3333 and int(1 // share) == 3
    assert Resources().settle([gpu_node, {"GPU": 1.0}]).gpus_per_trial == 0.0625  # no CPU: no trial
    assert Resources(gpus_per_trial=0).settle([gpu_node]).gpus_per_trial == 0  # given: kept
    assert Resources(gpus_per_trial=0.5).settle([cpu_node]).gpus_per_trial == 0.5


def test_gpus_per_trial_option_takes_auto_or_a_number():
    import argparse

    from sweeps.cli import gpu_share

    assert gpu_share("auto") is None and gpu_share("0.25") == 0.25 and gpu_share("0") == 0
    for bad in ("-1", "nan", "half"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not auto or a number of GPUs"):
            gpu_share(bad)


def test_the_grid_table_shows_the_tasks_own_keys_not_expmods():
    # The parent run's grid.txt of a primality sweep: its fields, no exponents or modulus.
    configs = [RunConfig(task="primality", n_max=n, seed=s) for n in (500, 1000) for s in (0, 1)]
    header = format_grid(configs).splitlines()[0].split()
    assert header[:5] == ["#", "n_max", "encoding", "base", "split"]
    assert "seed" in header and not {"a", "b", "p"} & set(header)
    assert format_grid([RunConfig(a=3, b=4)]).splitlines()[0].split() == ["#", "a", "b", "p"]
