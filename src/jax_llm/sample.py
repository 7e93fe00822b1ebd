"""Text generation: temperature, top-k, top-p; incremental decoding with a KV cache.

With the cache, the prompt is run once (prefill) and each new token costs one single-position step.
When the cache is full (block_size positions), it is rebuilt from the last half block, the
standard sliding-window compromise for learned absolute positions.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_llm.model import GPT, init_cache


def pick(logits, key, temperature: float, top_k: int, top_p: float):
    """One token id from (vocab,) logits. temperature 0 is greedy."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1)
    logits = logits / temperature
    if top_k:
        kth = jnp.sort(logits)[-min(top_k, logits.shape[-1])]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        order = jnp.argsort(-logits)
        probs = jax.nn.softmax(logits[order])
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        keep_sorted = jnp.cumsum(probs) - probs < top_p
        keep = jnp.zeros_like(keep_sorted).at[order].set(keep_sorted)
        logits = jnp.where(keep, logits, -jnp.inf)
    return jax.random.categorical(key, logits)


_pick = jax.jit(pick, static_argnums=(2, 3, 4))


@partial(jax.jit, static_argnums=(0,))
def prefill(graphdef, params, inputs, aux, cache, last):
    """Positions 0.. of `inputs` (1, T) (and `aux`, or None) into an empty cache; the logits at `last`."""
    logits = nnx.merge(graphdef, params)(inputs, aux, cache=cache, pos=0)
    return logits[0, last], cache


@partial(jax.jit, static_argnums=(0,), donate_argnums=(4,))
def extend(graphdef, params, inputs, aux, cache, pos):
    """Positions pos.. of `inputs` (1, T) into the cache (over whatever it held there); the last one's logits.
    The old cache is donated."""
    logits = nnx.merge(graphdef, params)(inputs, aux, cache=cache, pos=pos)
    return logits[0, -1], cache


@partial(jax.jit, static_argnums=(0, 5, 6, 7, 8), donate_argnums=(2,))
def _decode_run(graphdef, params, cache, token, pos, n, temperature, top_k, top_p, key, first_index):
    """n tokens in one compiled loop: feed the last token at `pos`, sample the next, repeat.

    One call per run instead of one per token, so the cache's saving is not lost to dispatch overhead.
    Token j is sampled with key fold_in(key, first_index + j), as the uncached path does.
    """
    model = nnx.merge(graphdef, params)

    def step(carry, j):
        cache, token = carry
        logits = model(token.reshape(1, 1), cache=cache, pos=pos + j)[0, -1]
        nxt = pick(logits, jax.random.fold_in(key, first_index + j), temperature, top_k, top_p)
        return (cache, nxt.astype(jnp.int32)), nxt

    (cache, _), new = jax.lax.scan(step, (cache, token), jnp.arange(n))
    return new, cache


@partial(jax.jit, static_argnums=(0,))
def _full(graphdef, params, window, length):
    """Logits for the last real token of a right-padded window (causal: the padding is never seen)."""
    logits = nnx.merge(graphdef, params)(window[None])
    return logits[0, length - 1]


def generate(model: GPT, prompt: list[int], max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int = 0, use_cache: bool = True) -> list[int]:
    """Prompt + new token ids. `use_cache=False` recomputes the whole context every token (for tests)."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    block = model.cfg.block_size
    graphdef, params = nnx.split(model)
    key = jax.random.key(seed)
    tokens = list(prompt)
    cache, pos = None, 0
    while len(tokens) - len(prompt) < max_new_tokens:
        i = len(tokens) - len(prompt)  # index of the token to sample next
        if not use_cache:
            context = tokens[-block:]
            window = np.zeros(block, np.int32)
            window[: len(context)] = context
            logits = _full(graphdef, params, jnp.asarray(window), len(context))
        elif cache is None or pos >= block:  # (re)build the cache from the last block (half block when full)
            context = tokens[-(block // 2 if cache is not None else block):]
            cache = init_cache(model.cfg, 1)
            logits, cache = prefill(graphdef, params, jnp.asarray([context], jnp.int32), None, cache, len(context) - 1)
            pos = len(context)
        else:  # as many tokens as fit in the cache, in one call
            n = min(max_new_tokens - i, block - pos)
            new, cache = _decode_run(graphdef, params, cache, jnp.asarray(tokens[-1], jnp.int32), pos, n,
                                     temperature, top_k, top_p, key, i)
            tokens += [int(t) for t in new]
            pos += n
            continue
        tokens.append(int(_pick(logits, jax.random.fold_in(key, i), temperature, top_k, top_p)))
    return tokens
