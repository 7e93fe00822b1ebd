"""The Transformer as a predictor: a whole split in causal windows (`predict_split`, the harness's batch),
and one keystroke at a time over a KV cache (`TransformerPredictor`). Both read each position from the
same window, so they agree exactly; scores are restricted to the typed code's words.
"""

import threading
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_llm import data
from jax_llm.errors import UserError
from jax_llm.ime.language.codes import CODE_IDS, code_id, code_ids
from jax_llm.ime.language.words import Vocab
from jax_llm.ime.modelfiles import META_FILE, VOCAB_FILE, read_meta
from jax_llm.ime.phrase import BEAM
from jax_llm.ime.predictor import Predictor
from jax_llm.ime.transformer import phrase
from jax_llm.ime.transformer.job import (FORMAT, NOT_TYPED, code_stream, mask_other_codes, streams, typed_codes,
                                         window_start)
from jax_llm.model import init_cache
from jax_llm.rundir import RunDir
from jax_llm.sample import extend, prefill
from jax_llm.train import load_model


@partial(jax.jit, static_argnums=(0, 4, 5))
def _topk(graphdef, params, batch, word_codes, k, restricted):
    logits = nnx.merge(graphdef, params)(batch["inputs"], batch.get("aux"))
    if restricted:
        logits = mask_other_codes(logits, batch["typed"], word_codes)
    values, ids = jax.lax.top_k(jax.nn.log_softmax(logits), k)
    return ids, values


def predict_split(model, vocab: Vocab, s: data.Streams, k: int, restricted: bool = True,
                  rows: int = 64, with_scores: bool = False, typed: np.ndarray | None = None):
    """Top-k word ids (and, `with_scores`, their log-probabilities) at every position, each predicted
    online from up to block-1 earlier positions.

    Windows advance by half a block and each position is read from the first window that covers it,
    so every position after the first block sees at least half a block of context. `typed`: the code
    typed at each position (default: the inputs; a lookahead model's inputs are later codes).
    """
    typed = typed_codes(s) if typed is None else typed
    width = min(model.cfg.block_size, len(s))
    starts = np.unique(np.minimum(np.arange(0, len(s), max(width // 2, 1)), len(s) - width))
    out, scores = np.zeros((len(s), k), np.int32), np.zeros((len(s), k), np.float32)
    graphdef, params = nnx.split(model)
    codes = jnp.asarray(vocab.code_of)
    covered = 0  # positions [0, covered) already predicted
    for i in range(0, len(starts), rows):
        chunk = starts[i: i + rows]
        batch = data.gather(s, chunk, width)
        del batch["targets"]
        batch["typed"] = typed[chunk[:, None] + np.arange(width)].astype(np.int32)
        pad = rows - len(chunk)
        if pad:  # a fixed batch shape: one compilation
            batch = {key: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for key, v in batch.items()}
        top, logp = (np.asarray(x) for x in _topk(graphdef, params, batch, codes, k, restricted))
        for j, start in enumerate(chunk):
            out[covered: start + width] = top[j, covered - start:]
            scores[covered: start + width] = logp[j, covered - start:]
            covered = start + width
    return (out, scores) if with_scores else out



class TransformerPredictor(Predictor):
    """The Predictor interface over a trained run directory, with a KV cache.

    Position p is read in the window of positions s..p, s = `window_start(p, block)`: the same window
    `predict_split` reads it from, so the two agree exactly. While the context grows by the word just
    confirmed, a keystroke costs one incremental step; every half block, or when the context changes
    otherwise, the window is re-read in one padded (fixed-shape) pass.

    That cache is state, and it stays here behind a lock rather than travelling with each request as an
    explicit state object (KenLM's `State`): it only pays off for one typist's consecutive keystrokes,
    while a server's requests each carry their whole context, so a per-request state would be rebuilt
    every time and save nothing; and one call already spreads over every core, so serialising calls
    costs the server little. Without the lock, concurrent calls would read a cache another call has
    just donated to XLA (`extend` reuses its buffers).
    """

    def __init__(self, run_dir: Path, seen: int | None = None):
        """`seen`: read at most that many of a lookahead model's K later codes at every position (0: the
        model ranks online; default K)."""
        run_dir = Path(run_dir)
        meta = read_meta(run_dir)
        if meta.get("format") != FORMAT:
            raise UserError(f"{run_dir / META_FILE}: made by an older jax-llm (format {meta.get('format', 1)}, this one "
                            f"reads {FORMAT}: word ids grouped by code); train it again with `jax-llm ime train`")
        self.confirmed, self.restricted = meta["confirmed"], meta.get("restricted", True)
        self.lookahead = int(meta.get("lookahead", 0))
        self.vocab = Vocab.load(run_dir / VOCAB_FILE)
        self.cfg, self.model, _ = load_model(run_dir)
        if self.cfg.model.ahead != self.lookahead:
            raise UserError(f"{run_dir}: a lookahead model of the older design (position i read code i+K); "
                            f"train it again with `jax-llm ime train --lookahead {self.lookahead}`")
        self.ahead = self.lookahead  # the model's K
        if seen is not None:
            if seen < 0:
                raise UserError(f"seen must be >= 0 (got {seen})")
            self.lookahead = min(seen, self.ahead)
        if self.cfg.model.out_vocab_size != len(self.vocab):
            raise UserError(f"{run_dir / VOCAB_FILE}: {len(self.vocab)} words (with <unk>), but the model in {RunDir(run_dir).config} "
                            f"scores {self.cfg.model.out_vocab_size}")
        self.graphdef, self.params = nnx.split(self.model)
        self._cache, self._window = None, None
        self._lock = threading.Lock()

    @property
    def label(self) -> tuple[str, str]:
        return ("transformer " + ("words+codes" if self.confirmed else "codes"),
                f"b{self.cfg.model.block_size}" + ("" if self.restricted else " unrestricted")
                + (f" ahead {self.lookahead}" if self.lookahead else ""))

    def _positions(self, context: Sequence[str], code: str, start: int, ahead: Sequence[str]) -> list[tuple]:
        """The window's positions as (code id, the next K code ids..., previous word id)."""
        words = list(context[start:])
        prev = [context[start - 1] if start else None] + words
        ids = [len(self.vocab) if w is None else self.vocab.index.get(w, 0) for w in prev]
        typed = [*code_ids(words).tolist(), CODE_IDS[code], *(CODE_IDS[c] for c in ahead[: self.lookahead])]
        typed += [NOT_TYPED] * self.lookahead
        hidden = (NOT_TYPED,) * (self.ahead - self.lookahead)  # the later codes it does not read (`seen`)
        return [(*typed[j: j + 1 + self.lookahead], *hidden, i) for j, i in enumerate(ids)]

    def logits(self, code: str, context: Sequence[str], ahead: Sequence[str] = ()) -> np.ndarray:
        """Scores of every word for `code` after `context` (unrestricted); a lookahead model also reads the
        codes typed after it (`ahead`, up to its lookahead)."""
        ahead = tuple(ahead[: self.lookahead])  # the codes it reads; a model without lookahead reads none
        for c in (code, *ahead):
            code_id(c)  # a string that is not a code: UserError
        block = self.cfg.model.block_size
        start = window_start(len(context), block)
        window = (start, self._positions(context, code, start, ahead))
        positions = window[1]
        with self._lock:
            same = 0  # leading positions already in the cache, as they are now
            if self._cache is not None and self._window[0] == start:
                old = self._window[1]
                while same < min(len(old), len(positions)) and old[same] == positions[same]:
                    same += 1
            same = min(same, len(positions) - 1)  # the last position is always run: its logits are the answer
            if self._cache is not None and same >= len(positions) - 1 - self.lookahead:
                # the next keystroke: one new position (a lookahead model also re-reads the K before it,
                # whose later codes have just arrived); the cache's stale entries past it are masked
                logits, self._cache = extend(self.graphdef, self.params, *self._batch(positions[same:]), self._cache,
                                             same)
            else:
                padded = window[1] + [(0,) * len(positions[0])] * (block - len(window[1]))
                self._cache = init_cache(self.cfg.model, 1)
                logits, self._cache = prefill(self.graphdef, self.params, *self._batch(padded), self._cache,
                                              len(window[1]) - 1)
            self._window = window
            return np.asarray(logits)

    def candidates(self, code: str, context: Sequence[str], k: int = 10, ahead: Sequence[str] = ()):
        """[(word, log-prob among the code's words), ...] best first."""
        logits = self.logits(code, context, ahead)
        cand = self.vocab.by_code[CODE_IDS[code]]
        if not len(cand):
            return []
        scores = logits[cand] - np.logaddexp.reduce(logits[cand])  # log-probs among the candidates
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.vocab.words[cand[i]], float(scores[i])) for i in order]

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0):
        """[(word, log-prob), ...] best first at positions start.., all computed in causal windows."""
        lo = window_start(start, self.cfg.model.block_size)  # on the window grid of `logits`: both agree exactly
        s = streams(self.vocab, words[lo:len(codes)], self.confirmed, self.ahead, seen=self.lookahead)
        if lo and s.aux is not None:  # the first previous word is a real word, not the start of text
            s.aux[0] = self.vocab.index.get(words[lo - 1], 0)
        top, logp = predict_split(self.model, self.vocab, s, k, self.restricted, with_scores=True,
                                  typed=code_stream(words[lo:len(codes)]))
        code_of, names = self.vocab.code_of, self.vocab.words
        return [[(names[j], float(v)) for j, v in zip(ids, vals) if j and code_of[j] == CODE_IDS[code]]
                for ids, vals, code in zip(top[start - lo:].tolist(), logp[start - lo:].tolist(), codes[start:])]

    def convert_phrase(self, codes: Sequence[str], context: Sequence[str], fixed: Mapping[int, str] = {},
                       beam: int | None = None) -> list[str]:
        for c in codes:
            code_id(c)  # a string that is not a code: UserError
        return self.convert_phrases([(context, codes, fixed)], beam)[0]

    def convert_phrases(self, phrases, beam: int | None = None, rerank=None) -> list[list[str]]:
        """Batched: many phrases and their hypotheses are rows of one KV cache (`transformer.phrase`)."""
        return phrase.convert(self, phrases, BEAM if beam is None else beam, rerank)

    def _batch(self, positions):
        """(inputs (1, T) or (1, T, 1 + K), aux (1, T)) for [(code id, later code ids..., previous word id), ...]."""
        arr = np.asarray(positions, np.int32)[None]  # (1, T, 2 + K)
        inputs = arr[..., :-1] if self.ahead else arr[..., 0]
        return jnp.asarray(inputs), jnp.asarray(arr[..., -1]) if self.confirmed else None
