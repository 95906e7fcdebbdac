"""What is task-specific in a run's figures and progress measures goes through the task's hooks
(``TaskBase.draw_figures``, ``progress_measures_apply``): the images each task's run leaves, the
tasks the measures apply to, and the measures' own guard."""

import pytest

from grokcore import records
from grokcore.config import ConfigError
from grokcore.progress import ProgressMeasures
from grokcore.tasks import TASKS, build_dataset, config_for
from grokcore.tasks.sorting import attention_figure
from grokcore.trainer import Trainer


BRIEF = dict(epochs=20, eval_every=10)
SORTING = dict(list_len=4, n_max=8, n_examples=200)
# the views of an expmod run's final weights (grokcore/tasks/expmod_figures.py)
EXPMOD_VIEWS = {"embedding_fourier.png", "neuron_fourier.png", "unembed_fourier.png",
                "attention.png"}

# task settings -> the PNGs its run folder holds: curves.png for every run, then the task's own
CASES = {
    "expmod measured": (dict(task="expmod", p=7, measure_every=10),
                        {"curves.png", "progress_measures.png", *EXPMOD_VIEWS}),
    "expmod unmeasured": (dict(task="expmod", p=7), {"curves.png", *EXPMOD_VIEWS}),
    "expmod attention only": (dict(task="expmod", p=7, attn_only=True), {"curves.png"}),
    "expmod 3 operands": (dict(task="expmod", p=5, n_operands=3), {"curves.png"}),
    "sorting": (dict(task="sorting", **SORTING), {"curves.png", "attention.png"}),
    "primality": (dict(task="primality", n_max=60), {"curves.png"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_folder_holds_its_tasks_own_figures(case, tmp_path):
    settings, expected = CASES[case]
    trainer = Trainer(config_for(**settings, **BRIEF))
    records.write_run_folder(trainer, trainer.run(), tmp_path)
    assert {p.name for p in tmp_path.glob("*.png")} == expected


def test_a_sorting_runs_attention_png_is_its_attention_figure(tmp_path):
    """Not expmod's grid of '=' attending to x: sorting's pattern on a test list."""
    trainer = Trainer(config_for("sorting", **SORTING, **BRIEF))
    records.write_run_folder(trainer, trainer.run(), tmp_path / "run")
    own = attention_figure(trainer.model, trainer.dataset, tmp_path / "own.png")
    assert (tmp_path / "run" / "attention.png").read_bytes() == own.read_bytes()


def test_progress_measures_apply_to_expmod_with_two_operands_and_an_mlp_only():
    expmod = TASKS["expmod"]
    assert expmod.progress_measures_apply(config_for("expmod"))
    assert not expmod.progress_measures_apply(config_for("expmod", attn_only=True))
    assert not expmod.progress_measures_apply(config_for("expmod", n_operands=3))
    # two operands and an MLP are the RunConfig defaults: the task, not the shape, says no here
    for name in ("primality", "coprimality", "gcd"):
        cfg = config_for(name)
        assert cfg.n_operands == 2 and not cfg.attn_only
        assert not TASKS[name].progress_measures_apply(cfg), name
    assert not TASKS["sorting"].progress_measures_apply(config_for("sorting"))


def test_progress_measures_refuse_what_they_cannot_measure():
    ok = config_for("expmod", p=7, eval_every=10, measure_every=10)
    assert ProgressMeasures(ok, build_dataset(ok)).every == 10
    refused = [config_for("expmod", p=7, attn_only=True),
               config_for("primality", p=7, n_max=49),  # 49 = p^2 examples, one number each
               config_for("coprimality", p=11, n_max=11)]  # all 11^2 pairs (x, y, =), 2 classes
    for cfg in refused:
        with pytest.raises(ConfigError, match="2 operands and an MLP"):
            ProgressMeasures(cfg, build_dataset(cfg), every=10)


@pytest.mark.parametrize("p", [7, 113])
def test_a_runs_figures_fit_their_fixed_margins(p, tmp_path, monkeypatch):
    """Laid out by fixed margins (``grokcore.figures.set_margins``), not measured: every label,
    title and legend still lies inside the saved image, at a small p and at p = 113 whose short
    run leaves a log axis spanning less than a decade (every tick labelled) and three-digit
    tick labels."""
    import grokcore.figures as figures
    import grokcore.tasks.expmod_figures as expmod_figures

    saved, outside = [], []
    save = figures.save_figure

    def checked(fig, path, dpi=110, tight=True):
        if not tight:
            fig.canvas.draw()
            box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, what is drawn
            width, height = fig.get_size_inches()
            if box.x0 < -0.01 or box.y0 < -0.01 or box.x1 > width + 0.01 or box.y1 > height + 0.01:
                outside.append(f"{path.name}: {box.bounds} in a {width} x {height} figure")
            saved.append(path.name)
        return save(fig, path, dpi=dpi, tight=tight)

    monkeypatch.setattr(figures, "save_figure", checked)
    monkeypatch.setattr(expmod_figures, "save_figure", checked)
    trainer = Trainer(config_for("expmod", p=p, measure_every=10, **BRIEF))
    summary = trainer.run()
    figures.write_run_figures(trainer.cfg, trainer.history, summary, trainer.model,
                              trainer.dataset, tmp_path, task=TASKS["expmod"])
    assert sorted(saved) == sorted(CASES["expmod measured"][1])
    assert not outside


@pytest.mark.parametrize("list_len", [4, 10])
def test_sortings_attention_figure_fits_its_fixed_margins(list_len, tmp_path, monkeypatch):
    """Its token labels (2 list_len + 2 of them, rotated) and its two titles lie inside the
    image, for a short and a long list."""
    import matplotlib.pyplot as plt

    import grokcore.figures as figures

    boxes = []
    save = figures.save_figure

    def checked(fig, path, dpi=110, tight=True):
        fig.canvas.draw()
        boxes.append((fig.get_tightbbox(fig.canvas.get_renderer()), fig.get_size_inches(), tight))
        return save(fig, path, dpi=dpi, tight=tight)

    monkeypatch.setattr(figures, "save_figure", checked)
    trainer = Trainer(config_for("sorting", list_len=list_len, n_max=16, n_examples=200, **BRIEF))
    trainer.run()
    attention_figure(trainer.model, trainer.dataset, tmp_path / "attention.png")
    (box, (width, height), tight), = boxes
    assert not tight and not plt.get_fignums()
    assert box.x0 >= -0.01 and box.y0 >= -0.01, box.bounds
    assert box.x1 <= width + 0.01 and box.y1 <= height + 0.01, (box.bounds, width, height)
