"""The model's speed-only rewrites compute the same values and gradients as the textbook forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_llm import model as model_lib
from jax_llm.config import FAMILIES, ModelConfig

TOL = dict(rtol=2e-5, atol=2e-6)


def close(a, b, **tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **(tol or TOL))


def test_dense_gradients_equal_autodiff_of_matmul():
    kx, kw, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 5, 8))
    w = jax.random.normal(kw, (8, 6))
    c = jax.random.normal(kc, (3, 5, 6))

    def loss(f):  # a non-linear consumer, so the incoming gradient is not constant
        return lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * c)

    got = jax.jit(jax.grad(loss(model_lib.dense), argnums=(0, 1)))(x, w)
    want = jax.grad(loss(lambda x, w: x @ w), argnums=(0, 1))(x, w)
    close(got, want)


def test_gelu_equals_jax_exact_gelu():
    x = jnp.linspace(-9.0, 9.0, 1001)
    close(model_lib.gelu(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-6)
    close(jax.vmap(jax.grad(model_lib.gelu))(x), jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x),
          rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_nnx_linear(bias):
    ours = model_lib.Linear(8, 4, use_bias=bias, rngs=nnx.Rngs(3))
    ref = nnx.Linear(8, 4, use_bias=bias, rngs=nnx.Rngs(3))
    if bias:
        ours.bias[...] = ref.bias[...] = jnp.arange(4.0)
    x = jax.random.normal(jax.random.key(1), (2, 3, 8))
    close(ours(x), ref(x))
    close(ours(x.astype(jnp.bfloat16)).astype(jnp.float32), ref(x.astype(jnp.bfloat16)).astype(jnp.float32),
          rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("arch", FAMILIES)
def test_gpt_loss_and_gradients_equal_the_plain_formulation(monkeypatch, arch):
    """The whole model, with the speed-ups, against the same model with `x @ W` and jax.nn.gelu."""
    cfg = ModelConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=32, block_size=16, **FAMILIES[arch])
    graphdef, params = nnx.split(model_lib.GPT(cfg, nnx.Rngs(0)))
    tokens = jax.random.randint(jax.random.key(2), (3, 17), 0, cfg.vocab_size)

    def loss(params):
        logits = nnx.merge(graphdef, params)(tokens[:, :-1])
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[:, 1:, None], axis=-1))

    fast = jax.jit(jax.value_and_grad(loss))(params)
    monkeypatch.setattr(model_lib, "dense", lambda x, w: x @ w)
    monkeypatch.setattr(model_lib, "gelu", lambda x: jax.nn.gelu(x, approximate=False))
    plain = jax.jit(jax.value_and_grad(loss))(params)
    close(fast[0], plain[0], rtol=1e-6, atol=1e-6)
    close(fast[1], plain[1], rtol=1e-4, atol=1e-6)
