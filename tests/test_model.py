import pytest
import torch

from grokcore.config import RunConfig
from grokcore.model import Transformer
from grokcore.tasks import build_dataset, config_for, validate

CONFIGS = [
    dict(),
    dict(a=3, b=5, n_heads=2, d_head=16, d_model=64, d_mlp=128),
    dict(act="gelu", use_bias=True),
    dict(attn_only=True),
    dict(pos_embed=False),
    dict(n_layers=2),
    dict(n_operands=3, p=11),
]


def _model(cfg: RunConfig):
    ds = build_dataset(cfg)
    model = Transformer.for_run(cfg, ds)
    with torch.no_grad():  # non-zero biases, at the scale of the weights, to test the fast path
        for name, param in model.named_parameters():
            if name.split(".")[-1].startswith("b_") and param.requires_grad:
                param.normal_(std=0.1)
    return model, ds


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("options", CONFIGS)
def test_fast_path_equals_full_path(options, dtype, tol):
    cfg = validate(RunConfig(**{"p": 23, **options}, dtype=dtype))
    model, ds = _model(cfg)
    full = model(ds.inputs)[:, -1]
    fast = model.forward_last(ds.inputs)
    assert fast.dtype == getattr(torch, dtype)
    assert (full - fast).abs().max().item() < tol
    # and the gradients agree, since training uses the fast path
    labels = ds.labels
    g_full = torch.autograd.grad(torch.nn.functional.cross_entropy(full, labels),
                                 [model.W_E, model.W_U])
    g_fast = torch.autograd.grad(torch.nn.functional.cross_entropy(fast, labels),
                                 [model.W_E, model.W_U])
    for a, b in zip(g_full, g_fast):
        assert (a - b).abs().max().item() < tol


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("options", [dict(), dict(n_layers=2, n_heads=2, use_bias=True),
                                     dict(attn_only=False, act="gelu", pos_embed=False)])
@pytest.mark.parametrize("watched", [False, True])
def test_forward_from_equals_the_full_path_from_that_position(options, dtype, tol, watched):
    """Sorting's loss positions: logits and gradients equal forward(tokens)[:, first:], with the
    fused kernel (a mask's last rows) and with the explicit pattern alike."""
    cfg = validate(config_for("sorting", list_len=9, variable_len=True, n_examples=40,
                             dtype=dtype, **options))
    model, ds = _model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    hooks = [("blocks.0.attn.hook_pattern", lambda pattern, hook: pattern)] if watched else []
    for first in (1, 9, ds.inputs.shape[1] - 1):
        with model.hooks(fwd_hooks=hooks):
            part = model.forward_from(ds.inputs, first)
        full = model(ds.inputs)[:, first:]
        assert part.shape == full.shape and (part - full).abs().max().item() < tol
        g_part = torch.autograd.grad(part.square().mean(), params)
        g_full = torch.autograd.grad(full.square().mean(), params)
        for a, b in zip(g_part, g_full):
            assert (a - b).abs().max().item() < tol * max(1.0, b.abs().max().item())


def test_hook_points_named_as_transformer_lens():
    cfg = RunConfig(p=23, n_layers=2)
    model, ds = _model(cfg)
    logits, cache = model.run_with_cache(ds.inputs[:7])
    for name in ["hook_embed", "hook_pos_embed", "blocks.0.attn.hook_pattern",
                 "blocks.0.attn.hook_q", "blocks.1.attn.hook_z", "blocks.0.mlp.hook_post",
                 "blocks.0.mlp.hook_pre", "blocks.1.hook_resid_post", "blocks.0.hook_resid_mid"]:
        assert name in cache, name
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert pattern.shape == (7, 4, 3, 3)
    assert torch.allclose(pattern.sum(-1), torch.ones(7, 4, 3))
    assert pattern[:, :, 0, 1:].abs().max() == 0  # causal
    assert cache["blocks.0.mlp.hook_post"].shape == (7, 3, 512)
    # Unhooked, the pattern is fused (scaled_dot_product_attention): equal up to rounding.
    assert (logits - model(ds.inputs[:7])).abs().max().item() < 1e-5


def test_a_hooked_pattern_is_explicit_and_an_unhooked_one_fused(monkeypatch):
    """pattern_is_watched asks the HookPoints (public TransformerLens state): a hook on the
    pattern (run_with_cache) takes the explicit path and sees the pattern; no hook, the fused."""
    import grokcore.model as model_module

    cfg = RunConfig(p=23)
    model, ds = _model(cfg)
    attn = model.blocks[0].attn
    calls = {"fused": 0, "explicit": 0}
    fused = model_module.F.scaled_dot_product_attention
    explicit = model_module.Attention.explicit_attention

    def count_fused(*args, **kwargs):
        calls["fused"] += 1
        return fused(*args, **kwargs)

    def count_explicit(self, *args):
        calls["explicit"] += 1
        return explicit(self, *args)

    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention", count_fused)
    monkeypatch.setattr(model_module.Attention, "explicit_attention", count_explicit)
    name = "blocks.0.attn.hook_pattern"
    assert not attn.pattern_is_watched()
    plain = model(ds.inputs[:7])
    assert calls == {"fused": 1, "explicit": 0}
    logits, cache = model.run_with_cache(ds.inputs[:7], names_filter=lambda n: n == name)
    assert calls == {"fused": 1, "explicit": 1}
    assert list(cache.keys()) == [name]
    pattern = cache[name]
    assert pattern.shape == (7, 4, 3, 3) and torch.allclose(pattern.sum(-1), torch.ones(7, 4, 3))
    assert pattern[:, :, 0, 1:].abs().max() == 0  # causal
    assert (logits - plain).abs().max().item() < 1e-5
    assert not attn.pattern_is_watched()  # run_with_cache removed its hook
    attn.hook_attn_scores.add_hook(lambda scores, hook: None)  # a hook on the scores too
    assert attn.pattern_is_watched()
    model(ds.inputs[:7])
    assert calls == {"fused": 1, "explicit": 2}
    model.reset_hooks()
    assert not attn.pattern_is_watched()


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("options", [dict(list_len=12, n_heads=1),
                                     dict(list_len=12, n_heads=3, variable_len=True, repeats=True),
                                     dict(list_len=6, n_heads=2, pos_embed=False)])
def test_fused_attention_equals_explicit_attention(options, dtype, tol):
    """Training attends through the fused kernel; analysis hooks the explicit pattern. Same model."""
    cfg = config_for("sorting", **options, n_examples=64, n_max=20, dtype=dtype)
    model, ds = _model(cfg)
    attn = model.blocks[0].attn
    watch = [("blocks.0.attn.hook_pattern", lambda pattern, hook: pattern)]

    def logits_and_grads(watched: bool):
        model.zero_grad()
        logits = model.run_with_hooks(ds.inputs, fwd_hooks=watch) if watched else model(ds.inputs)
        assert attn.pattern_is_watched() is False  # run_with_hooks removed its hook again
        logits.float().pow(2).mean().backward()
        return logits, [p.grad.clone() for p in (attn.W_Q, attn.W_K, attn.W_V, model.W_E)]

    fused, fused_grads = logits_and_grads(False)
    explicit, explicit_grads = logits_and_grads(True)
    assert fused.shape == (64, model.cfg.n_ctx, model.cfg.d_vocab_out)
    assert (fused - explicit).abs().max().item() < tol
    for a, b in zip(fused_grads, explicit_grads):
        assert (a - b).abs().max().item() < tol * max(1.0, b.abs().max().item())
    with model.hooks(fwd_hooks=watch):
        assert attn.pattern_is_watched()


def test_seed_defaults_and_frozen_biases():
    cfg = RunConfig()
    model, _ = _model(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"W_E", "W_pos", "W_U", "blocks.0.attn.W_Q", "blocks.0.attn.W_K",
                         "blocks.0.attn.W_V", "blocks.0.attn.W_O", "blocks.0.mlp.W_in",
                         "blocks.0.mlp.W_out"}
    assert model.W_E.shape == (114, 128) and model.W_U.shape == (128, 113)
    assert model.blocks[0].attn.W_Q.shape == (4, 128, 32)
    assert model.blocks[0].mlp.W_in.shape == (128, 512)
