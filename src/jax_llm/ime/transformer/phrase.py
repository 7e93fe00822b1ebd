"""Phrase conversion with the Transformer: `phrase.beam_search`'s search, batched. Many phrases and their
hypotheses are rows of one KV cache: each phrase's context is read once (prefill), then every word of the
phrase costs one single-position step for all rows, and the cache rows follow their hypotheses.

Each phrase is read after the (at most) CONTEXT words confirmed before it, at positions 0..; a phrase
longer than the rest of the block is converted in pieces, each piece's words the context of the next.
"""

from collections.abc import Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_llm.ime.language.codes import CODE_IDS
from jax_llm.ime.predictor import context_word, placeholder
from jax_llm.ime.transformer.job import NOT_TYPED
from jax_llm.model import init_cache

ROWS = 64  # most phrases per batch


@partial(jax.jit, static_argnums=(0,))
def _prefill(graphdef, params, inputs, aux, cache):
    model = nnx.merge(graphdef, params)
    model.hidden(inputs, aux, cache=cache, pos=0)
    return cache


@partial(jax.jit, static_argnums=(0, 8, 9))
def _step(graphdef, params, inputs, aux, cache, parents, pos, first, top, width, size):
    """The cache's rows reordered to `parents`, one position at `pos` for every row; the top `top` words of
    each row's code (its words: ids first..first+size-1, scored `width` at a time) and their
    log-probabilities among that code's words."""
    cache = jax.tree.map(lambda c: jnp.take(c, parents, axis=0), cache)
    model = nnx.merge(graphdef, params)
    h = model.hidden(inputs, aux, cache=cache, pos=pos)[:, -1]
    table = model.output_embedding()
    ids = first[:, None] + jnp.arange(width)[None, :]
    rows = jnp.take(table, jnp.minimum(ids, table.shape[0] - 1), axis=0)  # (rows, width, n_embd)
    logits = jnp.einsum("rd,rwd->rw", h, rows.astype(h.dtype)).astype(jnp.float32)
    cap = model.cfg.logit_softcap
    logits = cap * jnp.tanh(logits / cap) if cap else logits
    logp = jax.nn.log_softmax(jnp.where(jnp.arange(width)[None, :] < size[:, None], logits, -jnp.inf), axis=-1)
    values, at = jax.lax.top_k(logp, min(top, width))
    return jnp.take_along_axis(ids, at, axis=1), values, cache


def convert(predictor, phrases: Sequence[tuple[Sequence[str], Sequence[str], Mapping[int, str]]],
            beam: int, rerank=None) -> list[list[str]]:
    """[(context, codes, fixed), ...] -> each phrase's best words (model words), as `phrase.beam_search`
    (`rerank`: a `phrase.Rerank` for every phrase)."""
    block = predictor.cfg.model.block_size
    context_len, piece = block // 2, block - block // 2
    out: list[list[str]] = [[] for _ in phrases]
    todo = [(i, list(ctx[max(0, len(ctx) - context_len - 1):]), list(codes), dict(fixed), 0)  # what is read
            for i, (ctx, codes, fixed) in enumerate(phrases) if codes]
    while todo:  # each round converts the next piece (up to `piece` codes) of every unfinished phrase
        groups: dict[int, list] = {}
        for item in todo:
            groups.setdefault(min(len(item[1]), context_len), []).append(item)
        todo = []
        for c, items in sorted(groups.items()):
            items.sort(key=lambda item: len(item[2]) - item[4])  # similar lengths share a batch: fewer steps
            for at in range(0, len(items), ROWS):
                chunk = items[at: at + ROWS]
                words = _search(predictor, [(ctx[len(ctx) - c:], ctx[len(ctx) - c - 1] if len(ctx) > c else None,
                                             codes[done:], {j - done: w for j, w in fixed.items()}, piece,
                                             ctx[len(ctx) - done:] if done else [])
                                            for _, ctx, codes, fixed, done in chunk], beam, rerank)
                for (i, ctx, codes, fixed, done), got in zip(chunk, words):
                    out[i] += got
                    if done + len(got) < len(codes):
                        todo.append((i, ctx + [context_word(w, k) for w, k in zip(got, codes[done:])], codes,
                                     fixed, done + len(got)))
    return out


def _search(predictor, rows, beam: int, rerank) -> list[list[str]]:
    """Beam search for rows of (context words, the word before them or None, codes, fixed, most words, the
    phrase's words before these codes): every row has the same number of context words."""
    vocab, k_ahead, block = predictor.vocab, predictor.ahead, predictor.cfg.model.block_size
    seen = predictor.lookahead
    c = len(rows[0][0])
    n = max(min(len(r[2]), r[4]) for r in rows)
    P, start = len(rows), len(vocab)  # start of text
    R = 1 << (P - 1).bit_length()  # rows padded to a power of two: few shapes to compile
    index = vocab.index

    def word_id(w):
        return index.get(w, 0)

    # the context's positions: own code, later codes (the phrase's first codes among them), previous word
    inputs = np.zeros((R, block, 1 + k_ahead), np.int32)  # padding reads code 0: a valid id in every model
    inputs[:, :, 1:] = NOT_TYPED
    aux = np.zeros((R, block), np.int32)
    codes = np.full((P, n + k_ahead), NOT_TYPED, np.int32)
    for r, (ctx, before, phrase, *_) in enumerate(rows):
        typed = [CODE_IDS[w[:2] if len(w) >= 2 else w + " "] for w in ctx] + [CODE_IDS[x] for x in phrase[:n + k_ahead]]
        typed += [NOT_TYPED] * k_ahead
        for j in range(c):
            inputs[r, j, 0] = typed[j]
            inputs[r, j, 1: 1 + seen] = typed[j + 1: j + 1 + seen]
        aux[r, :c] = [start if before is None else word_id(before)] + [word_id(w) for w in ctx[:-1]] if c else []
        later = phrase[: n + k_ahead]
        codes[r, :len(later)] = [CODE_IDS[x] for x in later]
    graphdef, params = predictor.graphdef, predictor.params
    model_inputs = inputs if k_ahead else inputs[..., 0]
    cache = _prefill(graphdef, params, jnp.asarray(model_inputs), jnp.asarray(aux), init_cache(predictor.cfg.model, R))
    # hypotheses: rows P x beam; all start from their phrase's context row
    parents = np.repeat(np.arange(R), beam)[: R * beam]
    hyp_words = [[[] for _ in range(beam)] for _ in range(P)]
    scores = np.full((P, beam), -np.inf)
    scores[:, 0] = 0.0
    last = np.zeros((R, beam), np.int32)  # each hypothesis's previous word id
    for r, (ctx, before, *_) in enumerate(rows):
        last[r] = word_id(ctx[-1]) if ctx else (start if before is None else word_id(before))
    # each code's words are one run of ids (the vocabulary is grouped by code)
    size_of = np.array([len(ids) for ids in vocab.by_code] + [0], np.int32)  # NOT_TYPED, code 0 of padding: any
    first_of = np.array([ids[0] if len(ids) else 0 for ids in vocab.by_code] + [0], np.int32)
    width = max(16, 1 << (int(size_of.max()) - 1).bit_length())  # the largest code's words: one compilation
    depth = max(beam, rerank.depth if rerank else 0)

    def ranked(r, b, code, done):
        """Hypothesis b of row r: its best words for `code` (word, log-prob), re-ranked when asked."""
        got = [(vocab.words[i], float(v)) for i, v in zip(ids[r, b], values[r, b])
               if np.isfinite(v) and vocab.code_of[i] == CODE_IDS[code]]
        if rerank is None:
            return got[:beam]
        phrase = rows[r][2]
        before = list(done) + [context_word(w, k) for w, k in zip(hyp_words[r][b], phrase)]
        return rerank.fn(before, code, got, beam)

    for j in range(n):
        step_in = np.full((R, beam, 1 + k_ahead), NOT_TYPED, np.int32)
        step_in[:P, :, 0] = codes[:, j: j + 1]
        for s in range(seen):
            step_in[:P, :, 1 + s] = codes[:, j + 1 + s: j + 2 + s]
        step_in[..., 0] = np.where(step_in[..., 0] == NOT_TYPED, 0, step_in[..., 0])  # padding and finished rows
        step_in = step_in.reshape(R * beam, 1, 1 + k_ahead)
        code_now = step_in[:, 0, 0]
        ids, values, cache = _step(graphdef, params, jnp.asarray(step_in if k_ahead else step_in[..., 0]),
                                   jnp.asarray(last.reshape(-1, 1)), cache, jnp.asarray(parents), c + j,
                                   jnp.asarray(first_of[code_now]), depth, width, jnp.asarray(size_of[code_now]))
        if ids.shape[1] < depth:  # a step whose codes all have fewer words than the depth
            ids = jnp.pad(ids, ((0, 0), (0, depth - ids.shape[1])))
            values = jnp.pad(values, ((0, 0), (0, depth - values.shape[1])), constant_values=-jnp.inf)
        ids, values = np.asarray(ids).reshape(R, beam, depth)[:P], np.asarray(values).reshape(R, beam, depth)[:P]
        parents = np.arange(R * beam)
        for r, (_, _, phrase, fixed, most, done) in enumerate(rows):
            if j >= min(len(phrase), most):
                continue
            code = phrase[j]
            if j in fixed:
                grown = [(scores[r, b], b, fixed[j]) for b in range(beam)]
            elif not len(vocab.by_code[CODE_IDS[code]]):
                grown = [(scores[r, b], b, placeholder(code)) for b in range(beam)]
            else:
                grown = [(scores[r, b] + s, b, w) for b in range(beam) if np.isfinite(scores[r, b])
                         for w, s in ranked(r, b, code, done)]
            grown = sorted(grown, key=lambda g: -g[0])[:beam]  # stable: ties keep the model's order
            grown += [(-np.inf, grown[0][1], grown[0][2])] * (beam - len(grown))
            hyp_words[r] = [hyp_words[r][b] + [w] for _, b, w in grown]
            scores[r] = [s for s, _, _ in grown]
            parents[r * beam: (r + 1) * beam] = [r * beam + b for _, b, _ in grown]
            last[r] = [word_id(context_word(w, code)) for _, _, w in grown]
    return [hyp_words[r][0] for r in range(P)]
