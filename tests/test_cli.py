import json
import subprocess
import sys

import pytest

from grokcore import cli

BAD = [
    (["--p", "100"], "p=100 is not prime"),
    (["--a", "0"], "a=0 is out of range"),
    (["--p", "41", "--b", "41"], "b=41 is out of range; exponents are integers in 1..p-1 = 1..40"),
    (["--frac", "1.5"], "frac_train=1.5 is outside (0, 1)"),
    (["--dtype", "float17"], "dtype='float17' is not known"),
    (["--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["--threads", "0"], "--threads 0: give 1 or more"),
]


def _train(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "grokcore", "train", *args],
                          capture_output=True, text=True, timeout=timeout)


def _one_line_exit_2(code, out: str, err: str, message: str, folder) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert out == ""
    assert not folder.exists(), "nothing is written before validation passes"


def test_bad_input_from_the_shell_is_one_clear_line_and_exit_2(tmp_path):
    """The first bad input in a fresh ``python -m grokcore``: the exit status the shell sees, and
    nothing else (an import's warning, a traceback) on stderr."""
    args, message = BAD[0]
    result = _train(*args, "--out", str(tmp_path / "run"))
    _one_line_exit_2(result.returncode, result.stdout, result.stderr, message, tmp_path / "run")


@pytest.mark.parametrize("args,message", BAD[1:])
def test_bad_input_is_one_clear_line_and_exit_2(args, message, tmp_path, capsys):
    """The others through ``main`` in this process: the same checks without a new interpreter
    for each (four seconds apiece on a busy 2-core machine)."""
    try:
        code = cli.main(["train", *args, "--out", str(tmp_path / "run")])
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    out, err = capsys.readouterr()
    _one_line_exit_2(code, out, err, message, tmp_path / "run")


def test_json_summary_is_last_line(tmp_path):
    result = _train("--p", "23", "--epochs", "60", "--eval-every", "20", "--json", "--no-progress",
                    "--out", str(tmp_path), "--threads", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["provenance"]["torch_threads"] == "1"  # --threads, as the run records it
    for key in ("status", "reached", "threshold_epoch", "memorization_epoch", "n_spikes",
                "final_train_loss", "final_test_loss", "final_train_acc", "final_test_acc",
                "epochs_run", "seconds"):
        assert key in summary
    assert summary["epochs_run"] == 60
    assert {p.name for p in tmp_path.iterdir()} >= {"history.csv", "summary.json", "model.pt",
                                                     "checkpoint.pt", "config.json"}
    # --resume from the final checkpoint with a larger budget continues at epoch 60
    result = _train("--p", "23", "--epochs", "80", "--eval-every", "20", "--json", "--no-progress",
                    "--out", str(tmp_path), "--resume")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["epochs_run"] == 80


def test_help_documents_every_option():
    result = subprocess.run([sys.executable, "-m", "grokcore", "train", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--p", "--a", "--b", "--frac", "--dtype", "--epochs", "--seed", "--split",
                 "--n-operands", "--loss-dtype", "--stop-after-grok", "--json", "--weight-decay"):
        assert flag in result.stdout
    # Grouped as RunConfig's sections, in its order, --preset with the task.
    titles = ["task and data:", "model:", "optimiser and loss:", "budget and cadences:",
              "signal thresholds:"]
    at = [result.stdout.index(f"\n{t}\n") for t in titles]
    assert at == sorted(at)
    assert at[0] < result.stdout.index("  --preset") < at[1] < result.stdout.index("  --d-model")


def test_an_exponent_beyond_the_papers_grid_is_the_task_it_names():
    """Exponents run to p - 1 (the paper's grid stops at 9): (1, 39) at 41 has the labels
    x + y^39 = x + 1/y for y != 0, and b = 40 makes y^b 1 but at 0."""
    from grokcore.tasks import build_dataset, config_for

    for b, of_y in ((39, lambda y: pow(y, -1, 41) if y else 0), (40, lambda y: 1 if y else 0)):
        data = build_dataset(config_for("expmod", a=1, b=b, p=41))
        x, y = data.inputs[:, 0].tolist(), data.inputs[:, 1].tolist()
        assert data.labels.tolist() == [(xi + of_y(yi)) % 41 for xi, yi in zip(x, y)]
