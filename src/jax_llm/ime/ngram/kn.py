"""The kn model: the codes table and the confirmed-words table (`KNTable`), blended with the two recency
caches, over exactly the typed code's words. `candidates` answers one keystroke with scalar lookups;
`components` and `rank_split` answer a whole split at once, grouped by code, with the same numbers."""

import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from jax_llm.errors import UserError
from jax_llm.ime.language.codes import NUM_CODES, code_id, code_ids
from jax_llm.ime.ngram.cache import ConfirmedWords, cache_probs, cache_probs_batch
from jax_llm.ime.ngram.kn_table import KNTable
from jax_llm.ime.language.words import Vocab
from jax_llm.ime.predictor import Predictor


@dataclass
class KNConfig:
    code_order: int = 4
    word_order: int = 3
    word_weight: float = 0.5  # mix: (1-w) P_codes + w P_words
    cache_weight: float = 0.3  # then (1-c-b) P + c P_cache + b P_bigram_cache
    bigram_weight: float = 0.1
    cache_window: int = 10_000  # the caches see this many previous words,
    cache_decay: float = 300.0  # weighting a word d positions back by exp(-d / cache_decay)
    bigram_decay: float = 3000.0  # (for the bigram cache: words that followed the same previous word)
    context: str = "words+cache"  # or "words", or "codes" (the published codes-only setting)
    tuned: dict = field(default_factory=dict)  # dev figures behind the choices


CONTEXTS = ("codes", "words", "words+cache")
CHUNK = 1 << 21  # positions x candidates per batch matrix (16 MiB of float64)


class CodeGroup(NamedTuple):
    """Positions typed with one code, and each component's probabilities of that code's candidates there:
    (positions, candidates) matrices (lists of them, one per order, from `components(all_orders=True)`),
    their columns following `names`."""

    code: int
    positions: np.ndarray
    p_codes: np.ndarray | list[np.ndarray]
    p_words: np.ndarray | list[np.ndarray] | None  # None in the codes-only setting
    p_cache: tuple[np.ndarray, np.ndarray] | None  # (cache, bigram cache); None without the caches
    names: list[str]  # the code's vocabulary words, then (p_cache only) new words confirmed in the stream


def blend(p_codes, p_words, p_cache, word_weight: float, cache_weight: float, bigram_weight: float) -> np.ndarray:
    """(1-c-b) [(1-w) P_codes + w P_words] + c P_cache + b P_bigram_cache, with p_cache the pair of caches
    (or None). The caches may add columns (new words) after the vocabulary's."""
    p = p_codes if p_words is None else (1 - word_weight) * p_codes + word_weight * p_words
    if p_cache is None:
        return p
    out = cache_weight * p_cache[0] + bigram_weight * p_cache[1]
    out[..., : p.shape[-1]] += (1 - cache_weight - bigram_weight) * p
    return out


def _history(symbols: np.ndarray, positions: np.ndarray, order: int, bos: int) -> np.ndarray:
    """hist[:, j] = the symbol j+1 positions before each position (BOS before the start)."""
    cols = [np.where(positions - j - 1 >= 0, symbols[np.maximum(positions - j - 1, 0)], bos) for j in range(order - 1)]
    return np.stack(cols, 1) if cols else np.zeros((len(positions), 0), np.int64)


class KN(Predictor):
    """Codes-context KN + confirmed-words-context KN + recency cache, candidates = the typed code's words."""

    kind = "kn"

    def __init__(self, vocab: Vocab, codes_lm: KNTable, words_lm: KNTable, config: KNConfig):
        self.vocab, self.codes_lm, self.words_lm, self.config = vocab, codes_lm, words_lm, config
        self.base = [np.full(len(ids), 1.0 / max(len(ids), 1)) for ids in vocab.by_code]
        self._memo: ConfirmedWords | None = None  # the last context seen by `candidates`
        self._lock = threading.Lock()

    @classmethod
    def train(cls, words: Sequence[str], vocab: Vocab, config: KNConfig, max_code_order=None, max_word_order=None):
        word_ids, codes = vocab.encode(words).astype(np.int64), code_ids(words)
        codes_lm = KNTable.train(codes, word_ids, codes, vocab, max_code_order or config.code_order, NUM_CODES)
        words_lm = KNTable.train(word_ids, word_ids, codes, vocab, max_word_order or config.word_order, len(vocab))
        return cls(vocab, codes_lm, words_lm, config)

    def with_config(self, **changes) -> "KN":
        cfg = KNConfig(**{**asdict(self.config), **changes})
        if cfg.context not in CONTEXTS:
            raise UserError(f"unknown kn context {cfg.context!r}; one of {', '.join(CONTEXTS)}")
        if not (1 <= cfg.code_order <= self.codes_lm.order and 1 <= cfg.word_order <= self.words_lm.order):
            raise UserError(f"kn orders must be 1..{self.codes_lm.order} (codes) and 1..{self.words_lm.order} (words)")
        m = KN.__new__(KN)
        m.__dict__ |= self.__dict__ | {"config": cfg, "_memo": None, "_lock": threading.Lock()}
        return m

    def _rows(self, codes: np.ndarray, word_ids: np.ndarray, positions: np.ndarray, code_order: int,
              word_order: int):
        """Context rows of both tables at each position (words: None in the codes-only setting)."""
        typed = codes[positions]
        code_rows = self.codes_lm.rows(_history(codes, positions, code_order, NUM_CODES), typed, code_order)
        word_rows = None
        if self.config.context != "codes":
            known = np.where(word_ids < len(self.vocab), word_ids, 0)  # a new word is UNK to the words model
            word_rows = self.words_lm.rows(_history(known, positions, word_order, len(self.vocab)), typed, word_order)
        return code_rows, word_rows

    def _mix(self, p_codes, p_words, p_cache):
        cfg = self.config
        return blend(p_codes, p_words, p_cache, cfg.word_weight, cfg.cache_weight, cfg.bigram_weight)

    def _names(self, code: int, extra_by_code) -> list[str]:
        return [self.vocab.words[i] for i in self.vocab.by_code[code].tolist()] + extra_by_code.get(code, [])

    @property
    def label(self) -> tuple[str, str]:
        c = self.config
        return "kn", f"c{c.code_order}" + ("" if c.context == "codes" else f" w{c.word_order}")

    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        """One keystroke: scalar lookups only (the same numbers as `rank_split`, which batches them)."""
        typed = code_id(code)
        cfg = self.config
        n_cand = len(self.vocab.by_code[typed])
        new_words: list[str] = []
        p_cache = None
        if cfg.context == "words+cache":
            with self._lock:  # the memo is shared state; a server may call from several threads
                if self._memo is None or not self._memo.follow(context):
                    # one word more than the window: the previous word of the oldest (bigram cache)
                    self._memo = ConfirmedWords.of(self.vocab, context, cfg.cache_window + 1)
                seen = self._memo
                ids, codes, columns, new_words = seen.ids, seen.codes, seen.columns, list(seen.extra.get(typed, []))
            pos, n_cols = len(ids), n_cand + len(new_words)
            occurrences = np.flatnonzero(codes == typed)
            after = occurrences[occurrences > 0]
            after = after[ids[after - 1] == ids[-1]] if len(after) else after  # same previous word
            p_cache = (cache_probs(pos, occurrences, columns, n_cols, cfg.cache_window, cfg.cache_decay),
                       cache_probs(pos, after, columns, n_cols, cfg.cache_window, cfg.bigram_decay))
        if not n_cand and not new_words:
            return []
        n_back = max(cfg.code_order, cfg.word_order if cfg.context != "codes" else 1) - 1
        back = list(context[len(context) - n_back :]) if n_back else []
        back.reverse()  # most recent first
        base = self.base[typed]
        hist = code_ids(back, no_code=NUM_CODES).tolist()  # a word with no code reads as BOS
        p_codes = self.codes_lm.probs(base, self.codes_lm.rows_one(hist, typed, cfg.code_order), cfg.code_order)
        p_words = None
        if cfg.context != "codes":
            hist = [self.vocab.index.get(w, 0) for w in back]  # a new word is UNK to the words model
            p_words = self.words_lm.probs(base, self.words_lm.rows_one(hist, typed, cfg.word_order), cfg.word_order)
        p = self._mix(p_codes, p_words, p_cache)
        ids = self.vocab.by_code[typed]
        top = [t for t in np.argsort(-p, kind="stable")[:k].tolist() if p[t] > 0]
        return [(self.vocab.words[ids[t]] if t < n_cand else new_words[t - n_cand], math.log(p[t])) for t in top]

    def components(self, codes: Sequence[str], words: Sequence[str], start: int = 0, all_orders: bool = False):
        """Yield a `CodeGroup` per code (and chunk of at most CHUNK numbers) for positions start..

        Position i sees codes[:i+1] and the confirmed words[:i] only. With all_orders, the tables' scores
        come at every order up to theirs; otherwise at the configured orders.
        """
        cfg = self.config
        typed = code_ids(codes, no_code=NUM_CODES)  # a string with no code reads as BOS (and is never scored)
        seen = ConfirmedWords(self.vocab, words)
        ids, extra = seen.ids, seen.extra
        if all_orders:
            code_order, word_order = self.codes_lm.order, self.words_lm.order
        else:
            code_order, word_order = cfg.code_order, cfg.word_order
        positions = np.arange(start, len(typed))
        code_rows, word_rows = self._rows(typed, ids, positions, code_order, word_order)
        use_cache = cfg.context == "words+cache"
        stream_codes, columns = seen.codes, seen.columns
        # stream positions keyed by (code) and by (previous word, code), each key's positions in order
        stride, j = len(ids) + 1, np.flatnonzero(stream_codes >= 0)
        prev = np.r_[-1, ids[:-1]] + 1
        code_keys = np.sort(stream_codes[j] * stride + j)
        bigram_keys = np.sort((prev[j] * NUM_CODES + stream_codes[j]) * stride + j)
        here = typed[start:]
        by = np.argsort(here, kind="stable")
        bounds = np.searchsorted(here[by], np.arange(NUM_CODES + 1))
        for code in range(NUM_CODES):
            names = self._names(code, extra if use_cache else {})
            n_cand, sel_all = len(self.vocab.by_code[code]), by[bounds[code] : bounds[code + 1]]
            if not names or not len(sel_all):
                continue
            step = max(CHUNK // len(names), 1)
            for lo in range(0, len(sel_all), step):
                sel = sel_all[lo : lo + step]
                p_codes = self.codes_lm.probs_batch(n_cand, code_rows[sel], code_order, all_orders)
                p_words = None
                if word_rows is not None:
                    p_words = self.words_lm.probs_batch(n_cand, word_rows[sel], word_order, all_orders)
                p_cache, pos = None, positions[sel]
                if use_cache:
                    p_cache = (cache_probs_batch(pos, code_keys, code * stride, columns, len(names), cfg.cache_window,
                                                 cfg.cache_decay),
                               cache_probs_batch(pos, bigram_keys, (prev[pos] * NUM_CODES + code) * stride, columns,
                                                 len(names), cfg.cache_window, cfg.bigram_decay))
                yield CodeGroup(code, pos, p_codes, p_words, p_cache, names)

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """`Predictor.rank_split` with the positions grouped by code (`components`)."""
        out: list[list[str]] = [[] for _ in range(len(codes) - start)]
        for group in self.components(codes, words, start):
            p = self._mix(group.p_codes, group.p_words, group.p_cache)
            top = np.argsort(-p, axis=1, kind="stable")[:, :k]
            for i, row, p_row in zip((group.positions - start).tolist(), top.tolist(), p):
                out[i] = [group.names[t] for t in row if p_row[t] > 0]
        return out
