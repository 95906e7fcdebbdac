import math

import pytest
import torch

from grokcore.cli import build_parser, config_from_args
from grokcore.config import ConfigError, RunConfig
from grokcore.progress import (
    KEY_FREQS, MEASURES, basis_frequencies, embed_fourier_norms, fourier_basis, gini,
    key_freq_share, key_frequencies, neuron_frequency_fractions, power_map, progress_measures,
    pulled_back_basis,
    restricted_excluded_losses,
)
from grokcore.signals import measure_phases
from grokcore.tasks import build_dataset, validate
from grokcore.trainer import Trainer


@pytest.mark.parametrize("p", [7, 31, 113])
def test_fourier_basis_is_orthonormal(p):
    basis = fourier_basis(p)
    assert basis.shape == (p, p)
    assert torch.allclose(basis @ basis.T, torch.eye(p, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(basis[0], torch.full((p,), p ** -0.5, dtype=torch.float64))
    x = torch.arange(p, dtype=torch.float64)
    cos3 = torch.cos(2 * math.pi * 3 * x / p)
    assert torch.allclose(basis[5], cos3 / cos3.norm())  # rows: const, cos1, sin1, cos2, sin2, cos3
    assert basis_frequencies(p).tolist()[:5] == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("n", [1, 2, 7, 56])
def test_gini_of_uniform_is_zero_and_of_one_hot_is_n_minus_one_over_n(n):
    assert gini(torch.full((n,), 3.5)) == pytest.approx(0.0, abs=1e-12)
    one_hot = torch.zeros(n)
    one_hot[n // 2] = 2.0
    assert gini(one_hot) == pytest.approx((n - 1) / n, abs=1e-12)


def test_gini_orders_by_concentration_and_ignores_scale_and_order():
    spread, peaked = [1, 2, 3, 4], [0, 0, 1, 9]
    assert 0 < gini(spread) < gini(peaked) < 1
    assert gini([4, 3, 2, 1]) == pytest.approx(gini([10, 20, 30, 40]))
    # direct check of the Hurley-Rickard sum for [1, 2, 3, 4]: 1 - 2 * sum (c_i/10)(4 - i + .5)/4
    expected = 1 - 2 * sum((c / 10) * (4 - i + 0.5) / 4 for i, c in enumerate([1, 2, 3, 4], 1))
    assert gini(spread) == pytest.approx(expected)


def _key_logits(labels, p, freqs, amplitude=4.0):
    """Logits made only of key-frequency components: sum_k A cos(w_k (z - c)) for each class c."""
    z = labels.double()[:, None]
    c = torch.arange(p, dtype=torch.float64)[None, :]
    return sum(amplitude * torch.cos(2 * math.pi * k * (z - c) / p) for k in freqs)


@pytest.mark.parametrize("a,b", [(1, 1), (7, 1), (2, 2)])  # p = 31: 1 and 7 are bijections, 2 is not
def test_key_frequency_logits_restricted_equals_full_and_excluded_is_log_p(a, b):
    p = 31
    ds = build_dataset(RunConfig(p=p, a=a, b=b, frac_train=0.5))
    freqs = [3, 7, 11]
    logits = _key_logits(ds.labels, p, freqs)
    full = float(torch.nn.functional.cross_entropy(logits, ds.labels))
    restricted, excluded = restricted_excluded_losses(logits, ds.labels, ds.train_idx, p, freqs)
    assert full < 0.5 * math.log(p)  # the logits do solve the task
    assert restricted == pytest.approx(full, rel=1e-9)
    assert excluded == pytest.approx(math.log(p), abs=1e-6)
    # sine-only components are removed too (the seed removed cos twice and sin never)
    sine = sum(4.0 * torch.sin(2 * math.pi * k * ds.labels.double()[:, None] / p).expand(-1, p)
               * torch.randn(p, dtype=torch.float64) for k in freqs)
    assert restricted_excluded_losses(sine, ds.labels, ds.train_idx, p, freqs)[1] == pytest.approx(
        math.log(p), abs=1e-6)


def test_restricted_loss_drops_what_is_outside_the_key_frequencies():
    p = 31
    ds = build_dataset(RunConfig(p=p, frac_train=0.5))
    logits = _key_logits(ds.labels, p, [3]) + _key_logits(ds.labels, p, [9], amplitude=8.0)
    full = float(torch.nn.functional.cross_entropy(logits, ds.labels))
    restricted, excluded = restricted_excluded_losses(logits, ds.labels, ds.train_idx, p, [3])
    assert restricted > full + 0.5  # frequency 9 carried most of the answer
    assert excluded < restricted  # and excluding 3 leaves it
    # with no key frequencies, restricted logits are the class means and excluded loss is the loss
    none_r, none_e = restricted_excluded_losses(logits, ds.labels, ds.train_idx, p, [])
    train_loss = float(torch.nn.functional.cross_entropy(logits[ds.train_idx], ds.labels[ds.train_idx]))
    assert none_e == pytest.approx(train_loss)
    assert none_r == pytest.approx(math.log(p), abs=1e-6)


@pytest.mark.parametrize("a,b", [(1, 1), (7, 7)])
def test_key_frequencies_of_constructed_neurons(a, b):
    """Neurons that are functions of (u, v) = (x^a, y^b) at frequencies 4 and 13 are found."""
    p = 31
    cfg = RunConfig(p=p, a=a, b=b)
    u = power_map(p, a).double()[:, None]
    v = power_map(p, b).double()[None, :]
    gen = torch.Generator().manual_seed(0)
    neurons = []
    for i in range(40):
        k = 4 if i % 2 else 13
        w = 2 * math.pi * k / p
        phase = float(torch.rand(1, generator=gen)) * 6
        neurons.append(torch.relu(torch.cos(w * u + phase) + torch.cos(w * v + 1.0)).flatten())
    noise = 0.2 * torch.randn(p * p, 8, generator=gen, dtype=torch.float64)  # badly explained neurons
    acts = torch.cat([torch.stack(neurons, dim=1), noise], dim=1)
    fractions, variance = neuron_frequency_fractions(acts, cfg)
    assert fractions.shape == (48, (p - 1) // 2)
    assert key_frequencies(fractions) == [4, 13]
    share = key_freq_share(acts, cfg, [4, 13])
    assert 0.7 < share < 1.0  # the noise neurons are not explained
    assert key_freq_share(acts, cfg, [5]) < 0.05


def _zero_filled_fractions(acts, p, a, b):
    """The earlier definition, kept here as a reference: activations averaged onto the (u, v)
    grid, unreached cells zero, 2D Fourier transform, {const, cos k, sin k}^2 block energies."""
    def averaging(e):
        m = torch.zeros((p, p), dtype=torch.float64)
        m[power_map(p, e), torch.arange(p)] = 1.0
        return m / m.sum(dim=1, keepdim=True).clamp(min=1)

    basis = fourier_basis(p)
    grid = acts.double().reshape(p, p, -1)
    coeffs = torch.einsum("ix,jy,xyn->ijn", basis @ averaging(a), basis @ averaging(b), grid)
    freq = basis_frequencies(p)
    k_count = (p - 1) // 2 + 1
    by = torch.zeros((k_count, k_count, coeffs.shape[-1]), dtype=torch.float64)
    for i in range(p):
        for j in range(p):
            by[freq[i], freq[j]] += coeffs[i, j].square()
    total = by.sum(dim=(0, 1)) - by[0, 0]
    block = torch.diagonal(by, dim1=0, dim2=1).T[1:] + by[0, 1:] + by[1:, 0]
    return (block / total).T


@pytest.mark.parametrize("p", [31, 113])
def test_a_perfect_neuron_has_its_frequency_for_every_exponent(p):
    """cos(2 pi 3 (x^a + y^b) / p) is explained >= 0.99 by frequency 3 for every (a, b) in 1..9,
    bijective or not (zero-filling the unreached (u, v) cells gave 0.18 for (4, 5) at p = 31)."""
    for a in range(1, 10):
        for b in range(1, 10):
            u = power_map(p, a).double()[:, None]
            v = power_map(p, b).double()[None, :]
            neuron = torch.cos(2 * math.pi * 3 * (u + v) / p).reshape(-1, 1)
            fractions, variance = neuron_frequency_fractions(neuron, RunConfig(p=p, a=a, b=b))
            assert float(fractions[0, 2]) >= 0.99, (a, b)
            assert int(fractions[0].argmax()) == 2, (a, b)  # frequency 3 is the best
            assert float(variance[0]) > 0


def test_a_constant_neuron_has_no_variance():
    p = 31
    for a, b in [(1, 1), (2, 3), (4, 5)]:
        neuron = torch.full((p * p, 1), 2.5, dtype=torch.float64)
        fractions, variance = neuron_frequency_fractions(neuron, RunConfig(p=p, a=a, b=b))
        assert float(variance[0]) == pytest.approx(0.0, abs=1e-20)
        assert float(fractions.abs().max()) == 0.0
        assert key_freq_share(neuron, RunConfig(p=p, a=a, b=b), [3]) == 0.0


@pytest.mark.parametrize("a,b", [(1, 1), (7, 11), (13, 1)])  # bijections at p = 31
def test_bijective_exponents_give_the_relabelled_fourier_values(a, b):
    p = 31
    acts = torch.randn(p * p, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fractions, _ = neuron_frequency_fractions(acts, RunConfig(p=p, a=a, b=b))
    assert torch.allclose(fractions, _zero_filled_fractions(acts, p, a, b), atol=1e-12)
    # W_E's component norms: the plain Fourier transform of the rows relabelled by u = t^a
    w_e = torch.randn(p + 1, 8, dtype=torch.float64)
    relabelled = torch.zeros(p, 8, dtype=torch.float64)
    relabelled[power_map(p, a)] = w_e[:p]
    assert torch.allclose(embed_fourier_norms(w_e, p, a), (fourier_basis(p) @ relabelled).norm(dim=1))


def test_pulled_back_basis_is_the_basis_at_x_to_the_a():
    p = 31
    g = pulled_back_basis(p, 7)  # a bijection: orthonormal columns
    assert torch.allclose(g.T @ g, torch.eye(p, dtype=torch.float64), atol=1e-12)
    g2 = pulled_back_basis(p, 2)  # x^2 takes (p + 1) / 2 values: rank (p + 1) / 2
    assert int(torch.linalg.matrix_rank(g2)) == (p + 1) // 2
    x = 5
    assert torch.allclose(g2[x], fourier_basis(p)[:, pow(x, 2, p)])


def test_measure_every_is_validated_and_is_a_cli_option():
    with pytest.raises(ConfigError, match="multiple of eval_every"):
        validate(RunConfig(p=31, eval_every=10, measure_every=15))
    with pytest.raises(ConfigError, match="negative"):
        validate(RunConfig(p=31, measure_every=-1))
    with pytest.raises(ConfigError, match="need an MLP"):
        validate(RunConfig(p=31, eval_every=10, measure_every=10, attn_only=True))
    with pytest.raises(ConfigError, match="2 operands"):
        validate(RunConfig(p=31, eval_every=10, measure_every=10, n_operands=3))
    args = build_parser().parse_args(["train", "--measure-every", "200"])
    assert config_from_args(args).measure_every == 200


def test_measures_during_a_grokking_run(quick_config):
    cfg = quick_config.replace(measure_every=50)
    trainer = Trainer(cfg)
    summary = trainer.run()
    assert summary["status"] == "reached"
    history = trainer.history
    measured = [r for r in history if "restricted_loss" in r]
    # every 50 epochs, and the last evaluation too
    assert [r["epoch"] for r in measured[:-1]] == list(range(0, history[-1]["epoch"], 50))
    assert measured[-1] is history[-1]
    for row in measured:
        assert set(MEASURES) <= set(row) and isinstance(row[KEY_FREQS], str)
    first, last = measured[0], measured[-1]
    p, n_freqs = cfg.p, (cfg.p - 1) // 2
    # at the end: the circuit carries the answer, and removing it destroys the train fit
    assert last["excluded_loss"] > 1.0 and last["excluded_loss"] > 1000 * last["train_loss"]
    assert 1 <= last["n_key_freqs"] <= n_freqs // 4
    assert len(last[KEY_FREQS].split()) == last["n_key_freqs"]
    assert last["restricted_loss"] < 0.1 * last["test_loss"] + 1e-3
    assert last["key_freq_explained"] > 0.5
    # at initialisation nothing is sparse in the Fourier basis; at the end it is
    assert first["n_key_freqs"] == 0 and first["restricted_loss"] == pytest.approx(math.log(p), abs=0.2)
    assert last["gini_unembed"] > first["gini_unembed"] + 0.3
    assert last["gini_embed"] > first["gini_embed"] + 0.1
    # the trainer's numbers equal a direct measurement of the final model
    direct = progress_measures(trainer.model, cfg, trainer.dataset)
    assert direct["excluded_loss"] == pytest.approx(last["excluded_loss"], rel=1e-6)
    assert " ".join(map(str, direct[KEY_FREQS])) == last[KEY_FREQS]
    # measured phases are ordered and agree with the signals
    phases = measure_phases(history)
    assert phases["phase_memorization_end"] == summary["memorization_epoch"]
    assert summary["memorization_epoch"] < phases["phase_circuit_end"] < summary["threshold_epoch"]


def _row(epoch, train_acc, test_acc, test_loss, ssw, restricted=None):
    row = dict(epoch=epoch, train_acc=train_acc, test_acc=test_acc, test_loss=test_loss,
               sum_sq_weights=ssw)
    if restricted is not None:
        row["restricted_loss"] = restricted
    return row


def test_measure_phases_on_a_constructed_history():
    history = [
        _row(0, 0.0, 0.0, 4.0, 100.0, 4.0),
        _row(100, 1.0, 0.1, 9.0, 100.0, 6.0),   # memorized
        _row(200, 1.0, 0.3, 5.0, 90.0, 1.0),
        _row(300, 1.0, 0.6, 3.0, 70.0, 0.2),    # restricted <= 0.1 x test loss: circuit formed
        _row(400, 1.0, 0.995, 0.5, 50.0, 0.01),  # grokked, weights still falling fast (20/100)
        _row(500, 1.0, 1.0, 0.1, 40.0, 0.01),   # falling at 10/100: half the fastest rate, not under
        _row(600, 1.0, 1.0, 0.05, 35.0, 0.01),  # 5/100 < 0.5 x 20/100: cleanup over
        _row(700, 1.0, 1.0, 0.04, 34.0, 0.01),
    ]
    assert measure_phases(history) == {"phase_memorization_end": 100, "phase_circuit_end": 300,
                                       "phase_cleanup_end": 600}
    # without progress measures only memorization is measured; without grokking no cleanup end
    bare = [{k: v for k, v in r.items() if k != "restricted_loss"} for r in history]
    assert measure_phases(bare) == {"phase_memorization_end": 100, "phase_circuit_end": None,
                                    "phase_cleanup_end": None}
    no_grok = [dict(r, test_acc=min(r["test_acc"], 0.9)) for r in history]
    assert measure_phases(no_grok)["phase_cleanup_end"] is None
