"""``python -m grokcore train --replicates K [--no-pack]`` (grokcore/pack_cli.py)."""

from __future__ import annotations

import json
import math

from grokcore import cli, records

SMALL = ["train", "--p", "13", "--dtype", "float64", "--epochs", "40", "--eval-every", "10",
         "--device", "cpu", "--no-progress", "--json"]


def summaries(capsys, argv) -> list[dict]:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_stacked_pack_prints_what_the_runs_one_by_one_print(capsys):
    packed = summaries(capsys, SMALL + ["--replicates", "3", "--pack-engine", "stacked"])
    alone = summaries(capsys, SMALL + ["--replicates", "3", "--no-pack"])
    assert len(packed) == len(alone) == 3
    for p, a in zip(packed, alone):
        for key in ("final_train_loss", "final_test_loss", "final_train_acc", "final_test_acc"):
            assert math.isclose(p[key], a[key], rel_tol=1e-9), key
        for key in ("status", "outcome", "memorization_epoch", "threshold_epoch", "epochs_run"):
            assert p[key] == a[key]
        assert (p["provenance"]["pack_size"], a["provenance"]["pack_size"]) == ("3", "1")
    # replicate i trains with seed 999 + i and data seed 598 + i: different runs
    assert len({s["final_train_loss"] for s in alone}) == 3


def test_replicate_folders_resume(tmp_path, capsys):
    """--out DIR writes DIR/replicate_<i>, each a single run's folder; --resume continues all of
    them from their checkpoints to the same end as a pack that ran through."""
    argv = ["train", "--p", "13", "--eval-every", "10", "--device", "cpu", "--no-progress",
            "--json", "--replicates", "2", "--checkpoint-every", "20"]
    through = summaries(capsys, argv + ["--epochs", "60", "--out", str(tmp_path / "through")])
    summaries(capsys, argv + ["--epochs", "20", "--out", str(tmp_path / "split")])
    for i in range(2):
        (tmp_path / "split" / f"replicate_{i}" / records.SUMMARY_FILE).unlink()  # not ended
    resumed = summaries(capsys, argv + ["--epochs", "60", "--out", str(tmp_path / "split"),
                                        "--resume"])
    for i in range(2):
        a = records.read_history_csv(tmp_path / "through" / f"replicate_{i}" / records.HISTORY_FILE)
        b = records.read_history_csv(tmp_path / "split" / f"replicate_{i}" / records.HISTORY_FILE)
        assert a == b and len(a) == 7
        assert through[i]["final_test_loss"] == resumed[i]["final_test_loss"]


def test_replicates_that_cannot_be_stacked_exit_2(tmp_path, capsys):
    """The classes split gives each split seed its own number of training examples when
    x -> x^3 is not a bijection of Z_31: one line, exit 2, no folder written."""
    out = tmp_path / "out"
    code = cli.main(["train", "--p", "31", "--a", "3", "--b", "3", "--split", "classes",
                     "--epochs", "10", "--device", "cpu", "--replicates", "3",
                     "--pack-engine", "stacked", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "examples" in err
    assert not out.exists()
    assert cli.main(["train", "--replicates", "0"]) == 2


def test_a_pack_that_does_not_fit_in_memory_exit_2(tmp_path, capsys):
    """p = 113 needs tens of MiB a member (its 3,830 training examples' activations): a million
    members need terabytes. One line with the figures, exit 2, nothing written."""
    out = tmp_path / "out"
    code = cli.main(["train", "--p", "113", "--device", "cpu", "--replicates", "1000000",
                     "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "GiB" in err and "MiB each" in err and "at most" in err
    assert not out.exists()
