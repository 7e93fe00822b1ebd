"""A decoder-only Transformer in Flax NNX, in two families chosen by the config.

- The default, today's small-GPT recipe (nanochat's `gpt.py`, the modded-nanogpt speedrun): rotary
  positions, parameter-free RMSNorm (also right after the embedding), QK-norm, a ReLU² MLP, an untied
  head and a soft-capped output. `transformers` 5 calls this layout `NanoChatForCausalLM`.
- GPT-2 (`--set arch=gpt2`): learned positions, LayerNorm, GELU, a tied head. GPT-2 checkpoints import
  into it, and it is what reproduces nanoGPT.

Input and output vocabularies may differ (the input method reads 702 codes and predicts words), and
an optional second input stream (`aux`, e.g. the previous confirmed word) is added to the embedding.
Dropout takes an explicit key, so a training step is a pure function of (params, batch, key).
Decoding uses a fixed-size KV cache: one call per new token, each attending over the cache; keys are
cached after their rotation, at their absolute positions.

Two details exist only for speed on XLA:CPU (see docs/performance.md): linear layers have a
hand-written backward pass (`dense`), and GELU is written with `erf` rather than `jax.nn.gelu`'s `erfc`.
Both compute the same function and gradients as the textbook forms, to float rounding
(tests/test_model_speedups.py checks it).
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jax_llm.config import ModelConfig

AUX_DROPOUT_STREAM = 1 << 30  # fold_in index of the aux dropout's key, apart from the blocks' split keys
AHEAD_STREAM = AUX_DROPOUT_STREAM + 1  # fold_in index of the key that hides later inputs in training
ROPE_BASE = 10000.0  # rotary frequencies 1 / base^(2i/d), as nanochat and Llama
RMS_EPS = 1e-6  # NanoChat's rms_norm_eps in transformers


def _dropout(x, rate: float, key):
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


@jax.custom_vjp
def dense(x, kernel):
    """`x @ kernel` (x: (..., d_in), kernel: (d_in, d_out)) with a hand-written backward pass.

    Why: with plain autodiff, XLA:CPU fuses whatever produces the incoming gradient (the GELU
    derivative, the LayerNorm backward, the residual sums) into the transposed copy it makes for the
    weight-gradient matmul, so that elementwise work is recomputed there, unvectorised: on the `baby`
    preset that copy alone cost about 10 ms per layer. `optimization_barrier` makes the gradient a
    materialised value that both matmuls (dx and dW) read once. The maths is the textbook
    dx = g @ W.T, dW = x.T @ g.
    """
    return x @ kernel


def _dense_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _dense_bwd(res, g):
    x, kernel = res
    g = jax.lax.optimization_barrier(g)
    g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return (g2 @ kernel.T).reshape(x.shape), x2.T @ g2


dense.defvjp(_dense_fwd, _dense_bwd)


def gelu(x):
    """Exact (erf) GELU, as nanoGPT's nn.GELU(). `jax.nn.gelu(approximate=False)` computes the same
    through `erfc`, whose two-branch polynomial XLA:CPU evaluates about 2x slower than `erf`'s.
    `gelu_approximate=True` uses the tanh form instead, GPT-2's `gelu_new`, for imported GPT-2 weights."""
    return 0.5 * x * (1 + jax.lax.erf(x * (1 / math.sqrt(2))))


def rms_norm(x):
    """Parameter-free RMSNorm over the last axis, computed in float32."""
    x32 = x.astype(jnp.float32)
    return (x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + RMS_EPS)).astype(x.dtype)


class RMSNorm(nnx.Module):
    """`rms_norm` as a module, so the two families build their norms alike. It has no parameters."""

    def __call__(self, x):
        return rms_norm(x)


def _norm(cfg: ModelConfig, rngs):
    if cfg.rms_norm:
        return RMSNorm()
    return nnx.LayerNorm(cfg.n_embd, epsilon=1e-5, use_bias=cfg.bias, rngs=rngs)


def rotate(x, positions):
    """Rotary embedding of x (B, T, H, hd) at `positions` (T,): the two halves of each head turn by
    angle pos / base^(2i/hd). The sign is nanochat's (and `transformers`' NanoChat): (x1, x2) ->
    (x1 cos + x2 sin, x2 cos - x1 sin)."""
    half = x.shape[-1] // 2
    freq = 1.0 / ROPE_BASE ** (jnp.arange(half, dtype=jnp.float32) / half)
    angle = positions.astype(jnp.float32)[:, None] * freq[None, :]  # (T, half)
    cos, sin = jnp.cos(angle)[None, :, None, :], jnp.sin(angle)[None, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    return jnp.concatenate([x1 * cos + x2 * sin, x2 * cos - x1 * sin], axis=-1).astype(x.dtype)


def attention(q, k, v, q_pos, k_pos, dropout: float = 0.0, key=None):
    """softmax(q k^T / sqrt(hd)) v over keys at or before each query's position; q (B, T, H, hd), k and v
    (B, S, H, hd). Without attention dropout it is `jax.nn.dot_product_attention` (cuDNN's fused kernel on
    a GPU in bf16, XLA's elsewhere); with it, the same maths written out, since that call has no dropout."""
    mask = k_pos[None, :] <= q_pos[:, None]  # (T, S)
    if key is None or dropout == 0.0:
        on_gpu = jax.default_backend() == "gpu" and q.dtype in (jnp.bfloat16, jnp.float16)
        return jax.nn.dot_product_attention(q, k, v, mask=mask[None, None], implementation="cudnn" if on_gpu else None)
    att = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    att = _dropout(jax.nn.softmax(jnp.where(mask, att, -jnp.inf), axis=-1).astype(q.dtype), dropout, key)
    return jnp.einsum("bhqk,bkhd->bqhd", att, v)


class Linear(nnx.Linear):
    """nnx.Linear (same parameters, same initialisation) whose matmul is `dense`."""

    def __call__(self, x):
        kernel = self.kernel[...]
        dtype = jnp.result_type(x, kernel)
        y = dense(x.astype(dtype), kernel.astype(dtype))
        return y if self.bias is None else y + self.bias[...].astype(dtype)


def _linear(d_in, d_out, cfg: ModelConfig, rngs, output=False):
    """A block's linear layer, initialised as its family does. GPT-2: N(0, 0.02), output projections
    scaled by 1/sqrt(2 n_layer). With parameter-free norms the weights alone set the scale, so nanochat's:
    N(0, 1/d_in), and output projections at zero (each block starts as the identity)."""
    if cfg.rms_norm:
        init = nnx.initializers.zeros if output else nnx.initializers.normal(d_in ** -0.5)
    else:
        init = nnx.initializers.normal(0.02 / math.sqrt(2 * cfg.n_layer) if output else 0.02)
    return Linear(d_in, d_out, use_bias=cfg.bias, kernel_init=init, rngs=rngs)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.n_head, self.dropout, self.rope, self.qk_norm = cfg.n_head, cfg.dropout, cfg.rope, cfg.qk_norm
        self.qkv = _linear(cfg.n_embd, 3 * cfg.n_embd, cfg, rngs)
        self.proj = _linear(cfg.n_embd, cfg.n_embd, cfg, rngs, output=True)

    def __call__(self, x, key=None, cache=None, pos=0):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = jnp.split(self.qkv(x).reshape(B, T, 3 * H, C // H), 3, axis=2)  # each (B, T, H, hd)
        q_pos = pos + jnp.arange(T)
        if self.rope:  # rotation first, then the norm (nanochat's order)
            q, k = rotate(q, q_pos), rotate(k, q_pos)
        if self.qk_norm:
            q, k = rms_norm(q), rms_norm(k)
        if cache is None:
            k_pos = q_pos
        else:  # write this step's keys/values at positions pos.., attend over the whole cache
            k = cache[0] = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype), (0, pos, 0, 0))
            v = cache[1] = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype), (0, pos, 0, 0))
            k_pos = jnp.arange(k.shape[1])
        y = attention(q, k.astype(q.dtype), v.astype(q.dtype), q_pos, k_pos, self.dropout, key)
        return self.proj(y.reshape(B, T, C))


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.relu2, self.tanh_gelu = cfg.relu2, cfg.gelu_approximate
        self.fc = _linear(cfg.n_embd, 4 * cfg.n_embd, cfg, rngs)
        self.proj = _linear(4 * cfg.n_embd, cfg.n_embd, cfg, rngs, output=True)

    def __call__(self, x):
        h = self.fc(x)
        if self.relu2:
            return self.proj(jnp.square(jax.nn.relu(h)))
        return self.proj(jax.nn.gelu(h, approximate=True) if self.tanh_gelu else gelu(h))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.dropout = cfg.dropout
        self.ln1 = _norm(cfg, rngs)
        self.attn = Attention(cfg, rngs)
        self.ln2 = _norm(cfg, rngs)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x, key=None, cache=None, pos=0):
        k1, k2, k3 = jax.random.split(key, 3) if key is not None else (None, None, None)
        x = x + _dropout(self.attn(self.ln1(x), k1, cache, pos), self.dropout, k2)
        return x + _dropout(self.mlp(self.ln2(x)), self.dropout, k3)


class GPT(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        out_vocab = cfg.out_vocab_size or cfg.vocab_size
        embed_init = nnx.initializers.normal(0.02)
        head_init = nnx.initializers.normal(0.001 if cfg.rms_norm else 0.02)  # nanochat's near-zero head
        self.wte = nnx.Embed(cfg.vocab_size, cfg.n_embd, embedding_init=embed_init, rngs=rngs)
        self.wpe = None if cfg.rope else nnx.Embed(cfg.block_size, cfg.n_embd, embedding_init=embed_init, rngs=rngs)
        self.aux_embed = (nnx.Embed(cfg.aux_vocab_size, cfg.n_embd, embedding_init=embed_init, rngs=rngs)
                          if cfg.aux_vocab_size else None)
        self.ahead_embed = (nnx.Embed(cfg.ahead * cfg.vocab_size, cfg.n_embd, embedding_init=embed_init, rngs=rngs)
                            if cfg.ahead else None)
        self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layer)])
        self.ln_f = _norm(cfg, rngs)
        # tied output layer: the input embedding when the vocabularies match (GPT-2); else the aux
        # embedding when it covers the outputs (the input method: previous word in, next word out)
        self.out_vocab = out_vocab
        self.tied = "wte" if cfg.tie_embeddings and out_vocab == cfg.vocab_size else (
            "aux" if cfg.tie_embeddings and cfg.aux_vocab_size >= out_vocab else None)
        self.head = None if self.tied else Linear(cfg.n_embd, out_vocab, use_bias=False, kernel_init=head_init,
                                                  rngs=rngs)

    def __call__(self, inputs, aux=None, *, dropout_key=None, cache=None, pos=0):
        """Logits (B, T, out_vocab) in float32. With `cache` (from `init_cache`), positions start at `pos`."""
        return self.logits(self.hidden(inputs, aux, dropout_key=dropout_key, cache=cache, pos=pos))

    def hidden(self, inputs, aux=None, *, dropout_key=None, cache=None, pos=0):
        """The final (normalised) hidden states (B, T, n_embd): what the output layer scores. A job that
        scores only some of the outputs (the input method's candidates) starts from here."""
        if self.ahead_embed is not None:
            inputs, x = inputs[..., 0], self.read_ahead(inputs[..., 1:], dropout_key)
        else:
            x = 0.0
        x = x + self.wte(inputs)
        if self.wpe is not None:
            x = x + self.wpe(pos + jnp.arange(inputs.shape[1]))[None]
        if self.aux_embed is not None:
            if dropout_key is not None and self.cfg.aux_dropout:  # its own key: the other draws stay as they were
                drop = jax.random.bernoulli(jax.random.fold_in(dropout_key, AUX_DROPOUT_STREAM), self.cfg.aux_dropout, aux.shape)
                aux = jnp.where(drop, 0, aux)
            x = x + self.aux_embed(aux)
        if self.cfg.rms_norm:  # nanochat's norm right after the embedding
            x = rms_norm(x)
        keys = jax.random.split(dropout_key, len(self.blocks) + 1) if dropout_key is not None else None
        x = _dropout(x, self.cfg.dropout, None if keys is None else keys[-1])
        for i, block in enumerate(self.blocks):
            x = block(x, None if keys is None else keys[i], None if cache is None else cache[i], pos)
        return self.ln_f(x)

    def read_ahead(self, later, dropout_key=None):
        """The embedding of each position's later inputs (B, T, ahead), one table per offset. In training
        (`dropout_key`) each position sees a uniformly random number 0..ahead of them and the rest as not
        typed yet: one model then serves every moment of typing, from a word's own code to K codes on."""
        not_typed = self.cfg.vocab_size - 1
        if dropout_key is not None:
            seen = jax.random.randint(jax.random.fold_in(dropout_key, AHEAD_STREAM), later.shape[:-1] + (1,), 0,
                                      self.cfg.ahead + 1)
            later = jnp.where(jnp.arange(self.cfg.ahead) < seen, later, not_typed)
        return self.ahead_embed(later + self.cfg.vocab_size * jnp.arange(self.cfg.ahead)).sum(axis=-2)

    def logits(self, hidden, rows=None):
        """Scores (float32) of `rows` of the output layer (default: all of it) for `hidden` (..., n_embd),
        soft-capped as cap * tanh(logit / cap) when the config has a cap."""
        if rows is None and self.head is not None:
            y = self.head(hidden)
        else:
            rows = self.output_embedding() if rows is None else rows
            y = dense(hidden, rows.T.astype(hidden.dtype))  # as the untied head: no slow transposed copy
        y, cap = y.astype(jnp.float32), self.cfg.logit_softcap
        return cap * jnp.tanh(y / cap) if cap else y

    def output_embedding(self):
        """The output layer as (out_vocab, n_embd) rows, one per output: logits = hidden @ rows.T."""
        if self.tied == "wte":
            return self.wte.embedding[...]
        if self.tied == "aux":
            return self.aux_embed.embedding[: self.out_vocab]
        return self.head.kernel[...].T


def init_cache(cfg: ModelConfig, batch: int, dtype=jnp.float32) -> list[list[jax.Array]]:
    shape = (batch, cfg.block_size, cfg.n_head, cfg.n_embd // cfg.n_head)
    return [[jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)] for _ in range(cfg.n_layer)]


def count_params(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
