import ast
from pathlib import Path

import pytest

from grokcore.config import RunConfig

# A configuration that groks in seconds on a 2-core CPU (see README, "A run that groks fast").
QUICK = dict(p=31, frac_train=0.5, lr=3e-3, weight_decay=3.0, eval_every=10)


def pytest_configure(config):
    """One torch thread in every test process, as a sweep trial trains: on a busy 2-core machine
    more threads spin against other processes and take many times as long (test_trainer.py and
    test_optim.py alone: 200 s with torch's default of 2 threads beside a background run, 27 s
    with one). Set once here rather than by some modules at import: which of those a run
    happened to collect decided every other module's thread count (test_trainer.py run alone
    trained on 2)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def quick_config() -> RunConfig:
    return RunConfig(**QUICK, epochs=3000, stop_after_grok=3)


# ---- the fast subset -----------------------------------------------------------------------------
# `pytest -m "not slow"` is the inner loop: at most 3 minutes on 2 cores. The tests marked `slow`
# are listed here, in one place, rather than decorated in every file: whole modules that start
# Ray clusters, services or a browser, and single tests that train for long or start Ray. The full
# suite (`pytest`, what CI runs) still runs all of them.
SLOW_MODULES = {
    "test_multinode.py",  # a two-node Ray cluster, nodes and a driver killed
    "test_sweeps.py",  # a Ray cluster and real sweeps; its parser checks start the sweep script
    "test_tasks_sweeps.py",  # a sweep of each task on a Ray cluster
    "test_tracking_server.py",  # PostgreSQL and `mlflow server`
    "test_ui.py",  # a sweep, `mlflow ui` and headless Chromium
    "test_demo.py",  # the Quickstart's demo sweep, whole (about 5 minutes on 2 cores)
    "test_analysis.py",  # its MLflow store of trained runs takes half a minute to make
    "test_compile.py",  # torch.compile compiles for tens of seconds
    "test_results.py",  # rebuilds every committed results table through make.sh
}
SLOW_TESTS = {
    "test_search.py::test_tiny_search_end_to_end",  # Optuna on Ray Tune
    "test_tasks_gcd.py::test_brief_training_gets_the_gcds_that_are_products_of_the_base_primes",
    "test_cli.py::test_json_summary_is_last_line",  # a training run in a fresh process
    "test_progress.py::test_measures_during_a_grokking_run",
    "test_overhead.py::test_pending_figures_are_drawn_from_mlflow_and_logged",
    "test_overhead.py::test_figures_drawn_from_the_record_are_the_trials_own",
    "test_overhead.py::test_batched_writes_lose_no_row_and_match_unbatched",
    # a Ray cluster and real sweeps, packed and single (2-3 minutes each on 2 cores)
    "test_pack_sweeps.py::test_a_packed_sweep_leaves_the_runs_an_unpacked_one_does",
    "test_pack_sweeps.py::test_a_packed_sweep_killed_and_resumed",
    "test_pack_sweeps.py::test_a_crashed_pack_restarts_from_its_checkpoint",
    # a sweep on Ray beside a grid trained and imported; the grid -> import -> sweep pipelines,
    # three to seven processes each, each with a fresh MLflow store (about a minute each)
    "test_import_runs.py::test_an_imported_grid_leaves_the_runs_a_sweep_does",
    "test_import_runs.py::test_runs_the_budget_stopped_are_not_imported_as_ended",
    "test_import_runs.py::test_skip_ended_leaves_out_what_was_imported",
    # trained until they grok: a stacked pack against its single runs in float64 (over a
    # minute), and the store of five runs the hazard and power commands read (half a minute)
    "test_pack.py::test_members_equal_their_single_runs_float64",
    "test_hazard_power.py::test_hazard_and_power_on_a_sweep_in_mlflow",
    # the strict build of the whole site (every command's --help, the API pages)
    "test_docs.py::test_the_run_options_page_has_every_field_with_its_help",
    "test_docs.py::test_the_commands_page_is_each_commands_help",
    "test_docs.py::test_the_mlflow_layout_names_every_constant_of_records",
    "test_docs.py::test_table1_page_is_the_committed_table",
}


def _tests_in(module: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def _check_slow_names(folder: Path) -> None:
    """A slow test renamed or moved would silently join the fast subset: name the stale entry."""
    for entry in sorted(SLOW_MODULES | SLOW_TESTS):
        module, _, test = entry.partition("::")
        path = folder / module
        if not path.exists() or (test and test not in _tests_in(path)):
            raise pytest.UsageError(f"tests/conftest.py marks {entry} slow, but there is no such "
                                    "test; update SLOW_MODULES / SLOW_TESTS")


def pytest_collection_modifyitems(config, items):
    _check_slow_names(Path(__file__).parent)
    for item in items:
        module = item.path.name
        if module in SLOW_MODULES or f"{module}::{item.originalname}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    # Modules with slow tests first, each module kept whole and in its own order: with
    # `-n 2 --dist loadfile` the fast modules then fill in beside the last slow one, instead of a
    # slow module starting last while the other process has nothing left to do.
    has_slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in has_slow)  # stable: the order within a module
