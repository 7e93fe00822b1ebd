"""The modern recipe's parts: rotary positions, attention through jax.nn.dot_product_attention, Muon
batched over same-shape matrices, and runs made before the families existed resuming as they were."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.traverse_util import flatten_dict

from helpers import tiny_args
from jax_llm.cli import main
from jax_llm.config import FAMILIES, ModelConfig, RunConfig, make_config
from jax_llm.errors import UserError
from jax_llm.metrics import read_metrics
from jax_llm.model import GPT, attention, rotate
from jax_llm.optim import make_optimizer, muon_labels, stacked_by_shape


def explicit_attention(q, k, v):
    att = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    T, S = q.shape[1], k.shape[1]
    att = jnp.where(jnp.tril(jnp.ones((T, S), bool), S - T), att, -jnp.inf)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(att, axis=-1), v)


@pytest.mark.parametrize("T, S", [(7, 7), (1, 9), (3, 9)])
def test_dot_product_attention_equals_the_explicit_softmax(T, S):
    q, k, v = (jax.random.normal(key, (2, n, 3, 8)) for key, n in zip(jax.random.split(jax.random.key(0), 3), (T, S, S)))
    q_pos = jnp.arange(S - T, S)  # the last T positions, as a cached step sees them
    got = attention(q, k, v, q_pos, jnp.arange(S))
    np.testing.assert_allclose(got, explicit_attention(q, k, v), rtol=1e-5, atol=1e-6)
    with_dropout_path = attention(q, k, v, q_pos, jnp.arange(S), dropout=1e-9, key=jax.random.key(1))
    np.testing.assert_allclose(with_dropout_path, got, rtol=1e-5, atol=1e-6)


def test_rotary_scores_depend_only_on_the_distance():
    q, k = jax.random.normal(jax.random.key(0), (2, 1, 1, 1, 16))
    score = lambda i, j: float(jnp.sum(rotate(q, jnp.array([i])) * rotate(k, jnp.array([j]))))  # noqa: E731
    assert score(3, 1) == pytest.approx(score(10, 8), rel=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), rel=1e-3)
    np.testing.assert_allclose(rotate(q, jnp.array([0])), q, rtol=1e-6)  # position 0 is no rotation


def test_the_families_build_their_own_parameters():
    modern = nnx.state(GPT(ModelConfig(vocab_size=30, n_layer=1, n_head=2, n_embd=16, block_size=8), nnx.Rngs(0)),
                       nnx.Param)
    gpt2 = nnx.state(GPT(ModelConfig(vocab_size=30, n_layer=1, n_head=2, n_embd=16, block_size=8, **FAMILIES["gpt2"]),
                         nnx.Rngs(0)), nnx.Param)
    flat = lambda s: {".".join(map(str, k)) for k in flatten_dict(nnx.to_pure_dict(s))}  # noqa: E731
    assert {"wte.embedding", "head.kernel"} <= flat(modern) and not any("wpe" in k or "ln" in k for k in flat(modern))
    assert {"wte.embedding", "wpe.embedding", "ln_f.scale"} <= flat(gpt2) and "head.kernel" not in flat(gpt2)


def test_arch_sets_the_family_and_an_unknown_one_is_refused():
    cfg = make_config("baby", ["arch=gpt2"])
    assert all(getattr(cfg.model, k) == v for k, v in FAMILIES["gpt2"].items())
    with pytest.raises(UserError, match="unknown arch"):
        make_config(None, ["arch=llama"])


def test_a_config_written_before_the_families_loads_as_gpt2_with_adamw():
    d = json.loads(RunConfig().to_json())
    for key in (*FAMILIES["gpt2"], ):
        del d["model"][key]
    del d["train"]["optimizer"], d["train"]["muon_lr"], d["train"]["muon_ns_steps"]
    cfg = RunConfig.from_dict(d)
    assert all(getattr(cfg.model, k) == v for k, v in FAMILIES["gpt2"].items()) and cfg.train.optimizer == "adamw"


def test_muon_stacked_by_shape_equals_muon_per_matrix():
    shapes = [(8, 24), (8, 8), (8, 24), (32, 8), (8, 8)]
    params = {f"m{i}": jax.random.normal(jax.random.key(i), s) for i, s in enumerate(shapes)}
    grads = [{k: jax.random.normal(jax.random.key(100 + 10 * step + i), v.shape) for i, (k, v) in enumerate(params.items())}
             for step in range(3)]
    dims = optax.contrib.MuonDimensionNumbers(1, 2)
    plain, batched = optax.contrib.muon(0.02), stacked_by_shape(optax.contrib.muon(0.02, muon_weight_dimension_numbers=dims))
    p1, p2, s1, s2 = params, params, plain.init(params), batched.init(params)
    for g in grads:
        u1, s1 = plain.update(g, s1, p1)
        u2, s2 = batched.update(g, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    for k in params:
        np.testing.assert_allclose(p2[k], p1[k], rtol=1e-5, atol=1e-6)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    cfg = make_config(None, ["vocab_size=30", "n_layer=2", "n_head=2", "n_embd=16", "block_size=8", "arch=gpt2"])
    labels = jax.tree_util.tree_flatten_with_path(muon_labels(nnx.state(GPT(cfg.model, nnx.Rngs(0)))))[0]
    muon = {".".join(str(k.key) for k in path if hasattr(k, "key")) for path, v in labels if v == "muon"}
    assert muon == {f"blocks.{i}.{m}.kernel" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    assert make_optimizer(cfg.train) is not None


def test_a_muon_run_learns_and_resumes_exactly(tmp_path, corpus):
    """Kill-free resume: 12 steps in one go against 6 + 6 with a restart, Muon's stacked state checkpointed."""
    extra = ["optimizer=muon", "ckpt_interval=6", "eval_interval=6", "steps_per_call=2"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(tiny_args(corpus, whole, 12, *extra)) == 0
    assert main(tiny_args(corpus, split, 6, *extra)) == 0
    assert main([*tiny_args(corpus, split, 12, *extra), "--resume"]) == 0
    losses = lambda run: [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]  # noqa: E731
    a, b = losses(whole), losses(split)
    assert len(a) == 12 and a == b
    assert np.mean(a[-3:]) < np.mean(a[:3])


def test_resuming_with_another_optimizer_is_refused(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    assert main(tiny_args(corpus, run, 2)) == 0
    capsys.readouterr()
    assert main([*tiny_args(corpus, run, 2, "optimizer=adamw"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "with optimizer=adamw: it was trained with optimizer=muon" in err and err.count("\n") == 0
