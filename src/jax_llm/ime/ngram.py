"""n-gram FTCIM models: the published backoff baseline, and interpolated modified Kneser-Ney.

Both predict word i from code i and what came before it (online: never a later code). Everything is
numpy arrays of sorted int64 keys, so a model trains in seconds, saves as one .npz and loads in
milliseconds; a lookup is a binary search (`np.searchsorted`).

backoff (the study's baseline): for each order k it counts (code_{i-k+1..i}) -> word_i and predicts the
most frequent word of the longest code context seen in training. Ties go to the word seen first in
training: that reproduces the published table (breaking them by overall frequency instead scores about
one point higher on test from order 3 up, so the study's figures depend on it).

kn: two interpolated modified-Kneser-Ney models, each conditioned on the typed code, so its candidates
are exactly the words with that code: P(w | history, code_i), with history = the previous codes
("codes") or the previous confirmed words ("words"). Each level stores both the raw-count and the
continuation-count estimate, so one model of order N answers exactly as a model trained at any order
<= N would; tuning orders then costs no retraining. The two are mixed linearly, then with a recency
the two recency caches (over the last `cache_window` confirmed words, weighted by recency: the words
typed with this code, and those that followed the same previous word; they learn new words too).
Orders, weights and decays are tuned on a dev slice carved from the end of train (`words.dev_split`),
never on test.
"""

import json
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jax_llm.errors import UserError
from jax_llm.ime.codes import NUM_CODES, CODE_IDS, word_code
from jax_llm.ime.words import Vocab, dev_split

MODEL_KINDS = ("backoff", "kn")
FORMAT_VERSION = 1


def code_ids(words: Sequence[str]) -> np.ndarray:
    """Code id of each word; -1 for a string that has no code (not a-z). Vectorised: the study's
    corpora have a million words, and only distinct two-character prefixes are looked up."""
    if not len(words):
        return np.zeros(0, np.int64)
    prefix, inverse = np.unique(np.array(words, dtype=str).astype("U2"), return_inverse=True)
    table = np.array([CODE_IDS.get(word_code(p), -1) if p else -1 for p in prefix.tolist()], np.int64)
    return table[inverse.reshape(-1)]  # a one-character prefix comes only from a one-letter word


def _find(keys: np.ndarray, q) -> np.ndarray:
    """Row of each query in sorted `keys`, or -1."""
    q = np.asarray(q)
    if not len(keys):
        return np.full(q.shape, -1, np.int64)
    i = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return np.where(keys[i] == q, i, -1)


def _find_one(keys: np.ndarray, q: int) -> int:
    i = int(keys.searchsorted(q))
    return i if i < len(keys) and keys[i] == q else -1


# --------------------------------------------------------------------------------------- backoff


class Backoff:
    """The published baseline. Scores are (context order + relative frequency): ranks, not probabilities."""

    kind = "backoff"

    def __init__(self, vocab: Vocab, order: int, arrays: dict[str, np.ndarray]):
        self.vocab, self.order, self.a = vocab, order, arrays

    @classmethod
    def train(cls, words: Sequence[str], vocab: Vocab, order: int) -> "Backoff":
        w, c = vocab.encode(words).astype(np.int64), code_ids(words)
        arrays = {}
        for k in range(1, order + 1):
            key, ww, pos = _code_ngram_keys(c, k)[k - 1 :], w[k - 1 :], np.arange(k - 1, len(w))
            s = np.lexsort((ww, key))  # stable: each (context, word) group keeps its first position first
            key, ww, pos = key[s], ww[s], pos[s]
            start = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (ww[1:] != ww[:-1])])
            cnt = np.diff(np.r_[start, len(key)])
            key, ww, first_seen = key[start], ww[start], pos[start]
            s = np.lexsort((first_seen, -cnt, key))  # within a context: most frequent first, ties: seen first
            key, ww, cnt = key[s], ww[s], cnt[s]
            first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            arrays |= {f"keys{k}": key[first], f"starts{k}": np.r_[first, len(key)],
                       f"words{k}": ww.astype(np.int32), f"counts{k}": cnt.astype(np.int32)}
        return cls(vocab, order, arrays)

    def truncated(self, order: int) -> "Backoff":
        """The same model at a lower order (orders are counted independently, so this is exact)."""
        if not 1 <= order <= self.order:
            raise UserError(f"backoff order must be 1..{self.order}, got {order}")
        keep = {f"{name}{k}" for name in ("keys", "starts", "words", "counts") for k in range(1, order + 1)}
        return Backoff(self.vocab, order, {k: v for k, v in self.a.items() if k in keep})

    def _ranked(self, rows: Sequence[int], k: int) -> list[tuple[str, float]]:
        """rows[j] = row of the order-(j+1) context or -1; longest first, shorter ones fill up to k."""
        out, seen = [], set()
        for j in range(len(rows) - 1, -1, -1):
            if rows[j] < 0:
                continue
            lo, hi = self.a[f"starts{j + 1}"][rows[j] : rows[j] + 2]
            cnt = self.a[f"counts{j + 1}"][lo:hi]
            total = cnt.sum()
            for wid, n in zip(self.a[f"words{j + 1}"][lo : min(hi, lo + k)].tolist(), cnt[:k].tolist()):
                if wid not in seen:
                    seen.add(wid)
                    out.append((self.vocab.words[wid], j + 1 + n / total))
            if len(out) >= k:
                break
        return out[:k]

    def candidates(self, code: str, context: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        c = code_ids([*context[-(self.order - 1) :], code] if self.order > 1 else [code])
        if c[-1] < 0:
            return []
        rows = []
        for j in range(1, self.order + 1):
            if len(c) < j or (c[-j:] < 0).any():
                break
            rows.append(int(_find(self.a[f"keys{j}"], _code_ngram_keys(c[-j:], j)[-1])))
        return self._ranked(rows, k)

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """Batch hook for the harness (see evaluate.py): top-k at positions start.. (codes only, so the
        confirmed words are not needed)."""
        rows = self._rows(code_ids(codes))[start:]
        if k > 1:
            return [[w for w, _ in self._ranked(r, k)] for r in rows.tolist()]
        vw = self.vocab.words
        return [[vw[i]] if i >= 0 else [] for i in self._top1(rows).tolist()]

    def top1_ids(self, codes: Sequence[str], start: int = 0) -> np.ndarray:
        """rank_split(..., k=1) as word ids (-1: no prediction), all in numpy."""
        return self._top1(self._rows(code_ids(codes))[start:])

    def _rows(self, c: np.ndarray) -> np.ndarray:
        rows = np.stack([_find(self.a[f"keys{j}"], _code_ngram_keys(c, j)) for j in range(1, self.order + 1)], 1)
        for j in range(1, self.order):
            rows[:j, j] = -1  # no full context at the very start
        rows[c < 0] = -1
        return rows

    def _top1(self, rows: np.ndarray) -> np.ndarray:
        """The head of the longest context found, per position."""
        best = np.where(rows >= 0, np.arange(1, self.order + 1), 0).argmax(1)
        out = np.full(len(rows), -1, np.int64)
        for j in range(self.order):
            r = rows[:, j]
            sel = (best == j) & (r >= 0)
            out[sel] = self.a[f"words{j + 1}"][self.a[f"starts{j + 1}"][r[sel]]]
        return out


def _code_ngram_keys(c: np.ndarray, k: int) -> np.ndarray:
    """key[i] = codes c[i-k+1..i] as one base-702 number (702**6 < 2**63); rows i < k-1 are partial."""
    key = np.zeros(len(c), np.int64)
    for j in range(k - 1, -1, -1):
        shifted = np.zeros(len(c), np.int64)
        shifted[j:] = c[: len(c) - j] if j else c
        key = key * NUM_CODES + shifted
    return key


# -------------------------------------------------------------------------------------------- kn


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified-KN discounts D1, D2, D3+ from the count-of-counts (Chen & Goodman), safe on tiny data."""
    n = [int((counts == r).sum()) for r in (1, 2, 3, 4)]
    if min(n) == 0:
        return np.array([0.5, 1.0, 1.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.clip(d, 0.05, [0.95, 1.95, 2.95])


class KNTable:
    """P(w | last m history symbols, code) for m = 0..order-1, interpolated modified Kneser-Ney.

    Level m holds: `trie{m}` (sorted keys parent_history_id * S + symbol; the row is the history id),
    `ctx{m}` (sorted keys history_id * 702 + code), `start{m}`, gammas and, per event, the word's index
    within its code's candidate list (`Vocab.by_code`) and its discounted probability. Suffix `r` is the
    raw-count estimate (used at the top level of a query), `c` the continuation-count one (below it).
    """

    def __init__(self, order: int, n_symbols: int, arrays: dict[str, np.ndarray]):
        self.order, self.S, self.a = order, n_symbols + 1, arrays  # last symbol id is BOS
        self.levels = [
            tuple(arrays.get(f"{name}{m}") for name in ("trie", "ctx", "start", "idx", "gr", "gc", "ar", "ac"))
            for m in range(order)
        ]

    @classmethod
    def train(cls, history: np.ndarray, words: np.ndarray, codes: np.ndarray, vocab: Vocab, order: int,
              n_symbols: int) -> "KNTable":
        S, V, N = n_symbols + 1, len(vocab), len(words)
        local = np.zeros(len(vocab), np.int32)
        for ids in vocab.by_code:
            local[ids] = np.arange(len(ids))
        hid = np.zeros(N, np.int64)
        events, arrays = [], {}
        for m in range(order):
            if m:
                sym = np.full(N, n_symbols, np.int64)  # BOS before the start
                sym[m:] = history[: N - m]
                arrays[f"trie{m}"], hid = np.unique(hid * S + sym, return_inverse=True)
            ev, raw = np.unique((hid * NUM_CODES + codes) * V + words, return_counts=True)
            events.append((ev, raw))
        for m in range(order):
            ev, raw = events[m]
            if m + 1 < order:  # continuation count: distinct one-longer histories seen before (h, c, w)
                nxt = events[m + 1][0]
                ctx1, w = nxt // V, nxt % V
                parent = arrays[f"trie{m + 1}"][ctx1 // NUM_CODES] // S
                pk = np.sort((parent * NUM_CODES + ctx1 % NUM_CODES) * V + w)
                cont = np.searchsorted(pk, ev, "right") - np.searchsorted(pk, ev, "left")
            else:
                cont = raw
            ctx = ev // V
            first = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]])
            arrays |= {f"ctx{m}": ctx[first], f"start{m}": np.r_[first, len(ev)],
                       f"idx{m}": local[ev % V]}
            for tag, cnt in (("r", raw), ("c", cont)):
                d = _discounts(cnt)
                disc = d[np.minimum(cnt, 3) - 1]
                total = np.add.reduceat(cnt, first).astype(np.float64)
                arrays[f"a{tag}{m}"] = ((cnt - disc) / np.repeat(total, np.diff(np.r_[first, len(ev)]))).astype(np.float32)
                arrays[f"g{tag}{m}"] = (np.add.reduceat(disc, first) / total).astype(np.float32)
        return cls(order, n_symbols, arrays)

    def rows(self, hist: np.ndarray, codes: np.ndarray, order: int) -> np.ndarray:
        """Context row per (position, level), -1 where unseen. hist[:, j] = symbol j+1 positions back."""
        n = len(codes)
        out = np.full((n, order), -1, np.int64)
        hid = np.zeros(n, np.int64)
        alive = np.ones(n, bool)
        for m in range(order):
            trie, ctx = self.levels[m][0], self.levels[m][1]
            if m:
                hid = _find(trie, hid * self.S + hist[:, m - 1])
                alive &= hid >= 0
            r = _find(ctx, np.maximum(hid, 0) * NUM_CODES + codes)
            out[:, m] = np.where(alive, r, -1)
        return out

    def rows_one(self, hist: Sequence[int], code: int, order: int) -> list[int]:
        """`rows` for one position with Python scalars (a keystroke): hist[j] = symbol j+1 back."""
        hist = [*hist[: order - 1], *[self.S - 1] * (order - 1 - len(hist))]  # BOS before the start
        out, hid = [], 0
        for m in range(order):
            trie, ctx = self.levels[m][0], self.levels[m][1]
            if m:
                hid = _find_one(trie, hid * self.S + hist[m - 1])
                if hid < 0:
                    break
            r = _find_one(ctx, hid * NUM_CODES + code)
            if r < 0:
                break
            out.append(r)
        return out + [-1] * (order - len(out))

    def probs(self, base: np.ndarray, rows: Sequence[int], order: int) -> np.ndarray:
        """P over one code's candidates, from the uniform `base` up through the context rows found. The
        order's top level uses raw counts, the levels below continuation counts (as in any interpolated
        KN model, an unseen context backs off to the lower-order, continuation-count estimate)."""
        p = base
        for m in range(order):
            r = rows[m]
            if r < 0:  # unseen here, so unseen above too
                break
            _, _, start, idx, gr, gc, ar, ac = self.levels[m]
            lo, hi = start[r], start[r + 1]
            top = m == order - 1
            p = p * (gr if top else gc)[r]
            p[idx[lo:hi]] += (ar if top else ac)[lo:hi]
        return p

    def probs_batch(self, n_cand: int, rows: np.ndarray, order: int, all_orders: bool = False):
        """`probs` for many positions with the same code at once: one (positions, n_cand) matrix per order."""
        p, outs = np.full((len(rows), n_cand), 1.0 / max(n_cand, 1)), []
        for m in range(order):
            pos = np.flatnonzero(rows[:, m] >= 0)  # a row unseen at level m is unseen above it too
            if not len(pos):
                outs.extend([p] * (order - m))
                break
            r = rows[pos, m]
            _, _, start, idx, gr, gc, ar, ac = self.levels[m]
            ev = _ranges(start[r], start[r + 1])
            at = (np.repeat(pos, start[r + 1] - start[r]), idx[ev])
            scale = np.ones(len(rows))
            if all_orders or m == order - 1:
                scale[pos] = gr[r]
                q = p * scale[:, None]
                q[at] += ar[ev]
                outs.append(q)
            if m < order - 1:
                scale[pos] = gc[r]
                p = p * scale[:, None]
                p[at] += ac[ev]
        return outs if all_orders else outs[-1]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of range(lo[j], hi[j]) for all j, without a Python loop."""
    n = hi - lo
    return np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())


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


class KN:
    """Codes-context KN + confirmed-words-context KN + recency cache, candidates = the typed code's words."""

    kind = "kn"

    def __init__(self, vocab: Vocab, codes_lm: KNTable, words_lm: KNTable, config: KNConfig):
        self.vocab, self.codes_lm, self.words_lm, self.config = vocab, codes_lm, words_lm, config
        self.base = [np.full(len(ids), 1.0 / max(len(ids), 1)) for ids in vocab.by_code]
        self.local = np.zeros(len(vocab), np.int64)
        for ids in vocab.by_code:
            self.local[ids] = np.arange(len(ids))
        self._memo: Stream | None = None  # the last context seen by `candidates`
        self._lock = threading.Lock()

    @classmethod
    def train(cls, words: Sequence[str], vocab: Vocab, config: KNConfig, max_code_order=None, max_word_order=None):
        w, c = vocab.encode(words).astype(np.int64), code_ids(words)
        codes_lm = KNTable.train(c, w, c, vocab, max_code_order or config.code_order, NUM_CODES)
        words_lm = KNTable.train(w, w, c, vocab, max_word_order or config.word_order, len(vocab))
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

    def _rows(self, c: np.ndarray, w: np.ndarray, positions: np.ndarray, code_order: int, word_order: int):
        """Context rows of both tables at each position (words: None in the codes-only setting)."""
        codes_at = c[positions]
        cr = self.codes_lm.rows(_history(c, positions, code_order, NUM_CODES), codes_at, code_order)
        wr = None
        if self.config.context != "codes":
            known = np.where(w < len(self.vocab), w, 0)  # a new word is UNK to the words model
            wr = self.words_lm.rows(_history(known, positions, word_order, len(self.vocab)), codes_at, word_order)
        return cr, wr

    def _mix(self, p_codes, p_words, p_cache):
        cfg = self.config
        return blend(p_codes, p_words, p_cache, cfg.word_weight, cfg.cache_weight, cfg.bigram_weight)

    def _names(self, code: int, extra_by_code) -> list[str]:
        return [self.vocab.words[i] for i in self.vocab.by_code[code].tolist()] + extra_by_code.get(code, [])

    def candidates(self, code: str, context: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        """One keystroke: scalar lookups only (the same numbers as `rank_split`, which batches them)."""
        ci = CODE_IDS.get(code, -1)
        if ci < 0:
            return []
        cfg = self.config
        n_cand = len(self.vocab.by_code[ci])
        new_words: list[str] = []
        p_cache = None
        if cfg.context == "words+cache":
            with self._lock:  # the memo is shared state; a server may call from several threads
                if self._memo is None or not self._memo.follow(context):
                    # one word more than the window: the previous word of the oldest (bigram cache)
                    self._memo = Stream.of(self, context, cfg.cache_window + 1)
                st = self._memo
                ids, wc, col, new_words = st.ids, st.wc, st.col, list(st.extra.get(ci, []))
            pos, n_cols = len(ids), n_cand + len(new_words)
            occ = np.flatnonzero(wc == ci)
            after = occ[occ > 0]
            after = after[ids[after - 1] == ids[-1]] if len(after) else after  # same previous word
            p_cache = (_cache_one(pos, occ, col, n_cols, cfg.cache_window, cfg.cache_decay),
                       _cache_one(pos, after, col, n_cols, cfg.cache_window, cfg.bigram_decay))
        if not n_cand and not new_words:
            return []
        n_back = max(cfg.code_order, cfg.word_order if cfg.context != "codes" else 1) - 1
        back = list(context[len(context) - n_back :]) if n_back else []
        back.reverse()  # most recent first
        hist = [CODE_IDS.get(word_code(w), NUM_CODES) for w in back]
        base = self.base[ci]
        p_codes = self.codes_lm.probs(base, self.codes_lm.rows_one(hist, ci, cfg.code_order), cfg.code_order)
        p_words = None
        if cfg.context != "codes":
            hist = [self.vocab.index.get(w, 0) for w in back]  # a new word is UNK to the words model
            p_words = self.words_lm.probs(base, self.words_lm.rows_one(hist, ci, cfg.word_order), cfg.word_order)
        p = self._mix(p_codes, p_words, p_cache)
        ids = self.vocab.by_code[ci]
        top = [t for t in np.argsort(-p, kind="stable")[:k].tolist() if p[t] > 0]
        return [(self.vocab.words[ids[t]] if t < n_cand else new_words[t - n_cand], math.log(p[t])) for t in top]

    def components(self, codes: Sequence[str], words: Sequence[str], start: int = 0, all_orders: bool = False):
        """Yield (code, positions, P_codes, P_words, P_cache, names) for positions start.., by code.

        Position i sees codes[:i+1] and the confirmed words[:i] only. The P's are (positions, candidates)
        matrices (lists of them, one per order, with all_orders); columns follow `names`: the code's
        vocabulary words, then (P_cache only) new words confirmed in the stream. P_words and P_cache are
        None where the setting does not use them.
        """
        cfg = self.config
        c = code_ids(codes)
        c = np.where(c < 0, NUM_CODES, c)
        st = Stream(self, words)
        w, extra = st.ids, st.extra
        co, wo = (self.codes_lm.order, self.words_lm.order) if all_orders else (cfg.code_order, cfg.word_order)
        positions = np.arange(start, len(c))
        cr, wr = self._rows(c, w, positions, co, wo)
        use_cache = cfg.context == "words+cache"
        wc, col = st.wc, st.col
        # stream positions keyed by (code) and by (previous word, code), each key's positions in order
        stride, j = len(w) + 1, np.flatnonzero(wc >= 0)
        prev = np.r_[-1, w[:-1]] + 1
        uni = np.sort(wc[j] * stride + j)
        bi = np.sort((prev[j] * NUM_CODES + wc[j]) * stride + j)
        here = c[start:]
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
                pc = self.codes_lm.probs_batch(n_cand, cr[sel], co, all_orders)
                pw = None if wr is None else self.words_lm.probs_batch(n_cand, wr[sel], wo, all_orders)
                pk, pos = None, positions[sel]
                if use_cache:
                    pk = (_cache_batch(pos, uni, code * stride, col, len(names), cfg.cache_window, cfg.cache_decay),
                          _cache_batch(pos, bi, (prev[pos] * NUM_CODES + code) * stride, col, len(names),
                                       cfg.cache_window, cfg.bigram_decay))
                yield code, pos, pc, pw, pk, names

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """Batch hook for the harness (see evaluate.py): top-k words at positions start.., grouped by code."""
        out: list[list[str]] = [[] for _ in range(len(codes) - start)]
        for code, pos, pc, pw, pk, names in self.components(codes, words, start):
            p = self._mix(pc, pw, pk)
            top = np.argsort(-p, axis=1, kind="stable")[:, :k]
            for i, row, prow in zip((pos - start).tolist(), top.tolist(), p):
                out[i] = [names[t] for t in row if prow[t] > 0]
        return out


def blend(p_codes, p_words, p_cache, word_weight: float, cache_weight: float, bigram_weight: float) -> np.ndarray:
    """(1-c-b) [(1-w) P_codes + w P_words] + c P_cache + b P_bigram_cache, with p_cache the pair of caches
    (or None). The caches may add columns (new words) after the vocabulary's."""
    p = p_codes if p_words is None else (1 - word_weight) * p_codes + word_weight * p_words
    if p_cache is None:
        return p
    out = cache_weight * p_cache[0] + bigram_weight * p_cache[1]
    out[..., : p.shape[-1]] += (1 - cache_weight - bigram_weight) * p
    return out


def _cache_batch(pos: np.ndarray, keyed: np.ndarray, base, col: np.ndarray, n_cols: int, window: int,
                 decay: float) -> np.ndarray:
    """Decayed share of each candidate among the cached words in the `window` words before each position.
    `keyed`: sorted key * stride + stream position of the cached words; `base`: each query's key * stride
    (0 with a single key); `col`: each stream position's candidate column."""
    base = np.broadcast_to(base, pos.shape)
    a = np.searchsorted(keyed, base + np.maximum(pos - window, 0))  # never into the previous key's range
    b = np.searchsorted(keyed, base + pos)
    row = np.repeat(np.arange(len(pos)), b - a)
    t = keyed[_ranges(a, b)] - base[row]
    weight = np.exp((t - pos[row]) / decay)
    counts = np.bincount(row * n_cols + col[t], weight, len(pos) * n_cols).reshape(len(pos), n_cols)
    return counts / np.maximum(counts.sum(1), 1e-300)[:, None]


def _cache_one(pos: int, occ: np.ndarray, col: np.ndarray, n_cols: int, window: int, decay: float) -> np.ndarray:
    """`_cache_batch` for one position (a keystroke); `occ`: sorted positions of the cached words."""
    t = occ[np.searchsorted(occ, pos - window) :]
    counts = np.bincount(col[t], np.exp((t - pos) / decay), n_cols)
    return counts / max(counts.sum(), 1e-300)


class Stream:
    """Ids of a confirmed word stream. A word outside the vocabulary gets an id from len(vocab) up: the
    cache learns it (an input method learns the word a user corrected it to). Per position: `ids`, `wc`
    (the word's code, -1 if none) and `col` (its column among that code's candidates); `extra[code]`
    lists a code's new words in column order.

    For keystrokes, a stream keeps only the last `keep` words of a context (`of`), and `follow` moves
    on to the same context grown by one word without re-reading it: it checks the last TAIL words and
    the length, and assumes older words unchanged (an edit further back than that is not seen by the
    caches until the next context that does not follow)."""

    TAIL = 64

    def __init__(self, model: "KN", words: Sequence[str], keep: int | None = None, total: int | None = None):
        self.vocab, self.local, self.keep = model.vocab, model.local, keep
        self.total = len(words) if total is None else total  # length of the whole context seen
        self.tail = list(words[-self.TAIL :])
        ids = self.vocab.encode(words).astype(np.int64)
        self.new: dict[str, tuple[int, int, int]] = {}  # word -> (id, code, column)
        self.extra: dict[int, list[str]] = {}
        wc, col = self.vocab.code_of[ids].astype(np.int64), model.local[ids]
        for i in np.flatnonzero(ids == 0).tolist():
            ids[i], wc[i], col[i] = self._new(words[i])
        n = len(ids)
        self._buf = np.zeros((3, 2 * max(n, keep or 0) + 16), np.int64)  # ids, wc, col; appended in place
        self._buf[:, :n] = ids, wc, col
        self._lo, self._hi = 0, n

    ids = property(lambda self: self._buf[0, self._lo : self._hi])
    wc = property(lambda self: self._buf[1, self._lo : self._hi])
    col = property(lambda self: self._buf[2, self._lo : self._hi])

    @classmethod
    def of(cls, model: "KN", context: Sequence[str], keep: int) -> "Stream":
        return cls(model, list(context[len(context) - keep :]) if len(context) > keep else list(context), keep,
                   len(context))

    def _new(self, word: str) -> tuple[int, int, int]:
        if word not in self.new:
            cc = int(code_ids([word])[0])
            got = self.extra.setdefault(cc, [])
            got.append(word)
            col = len(self.vocab.by_code[cc]) + len(got) - 1 if cc >= 0 else 0
            self.new[word] = (len(self.vocab) + len(self.new), cc, col)
        return self.new[word]

    def follow(self, context: Sequence[str]) -> bool:
        """Become the stream of `context` if that is this one's context, or it plus one word."""
        n, T = len(context), self.TAIL
        if n == self.total:
            return list(context[n - T :] if n > T else context) == self.tail
        if n != self.total + 1 or list(context[max(n - 1 - T, 0) : n - 1]) != self.tail[-T:]:
            return False
        word = context[n - 1]
        wid = self.vocab.index.get(word, 0)
        wid, cc, col = (wid, int(self.vocab.code_of[wid]), int(self.local[wid])) if wid else self._new(word)
        if self._hi == self._buf.shape[1]:  # full: move the kept words to the front (amortised O(1))
            n = self._hi - self._lo
            self._buf[:, :n] = self._buf[:, self._lo : self._hi]
            self._lo, self._hi = 0, n
        self._buf[:, self._hi] = wid, cc, col
        self._hi += 1
        if self.keep is not None and self._hi - self._lo > self.keep:
            self._lo += 1
        self.tail = [*self.tail[-(T - 1) :], word]
        self.total = n
        return True


def _history(sym: np.ndarray, positions: np.ndarray, order: int, bos: int) -> np.ndarray:
    """hist[:, j] = the symbol j+1 positions before each position (BOS before the start)."""
    cols = [np.where(positions - j - 1 >= 0, sym[np.maximum(positions - j - 1, 0)], bos) for j in range(order - 1)]
    return np.stack(cols, 1) if cols else np.zeros((len(positions), 0), np.int64)


# ---------------------------------------------------------------------------------------- tuning

WORD_WEIGHTS = (0.5, 0.7, 0.8, 0.9, 0.95)
CACHE_WEIGHTS = [(c, b) for c in (0.1, 0.2, 0.3, 0.4, 0.5) for b in (0.0, 0.1, 0.2, 0.3)]  # (cache, bigram)
CACHE_DECAYS = (100.0, 300.0, 1000.0)
MAX_DEV_WORDS = 40_000  # enough to rank the choices; keeps training in seconds


def _dev_hits(model: KN, codes, words, start, pick, all_orders=True) -> np.ndarray:
    """Top-1 hits over dev positions start.. of each score matrix `pick(pc, pw, pk)` returns. A dev word
    the model cannot propose (outside the vocabulary and not yet in the cache) is a miss for every choice."""
    st = Stream(model, words)
    wc, col = st.wc, st.col
    hits = 0
    for code, pos, pc, pw, pk, _ in model.components(codes, words, start, all_orders):
        want = np.where(wc[pos] == code, col[pos], -1)
        hits = hits + np.array([int((m.argmax(1) == want).sum()) for m in pick(pc, pw, pk)])
    return np.asarray(hits)


def tune(model: KN, codes: Sequence[str], words: Sequence[str], start: int, log=None) -> KNConfig:
    """Choose orders and weights for `model` (trained on words[:start]) by top-1 on positions start..

    Greedy, each stage one pass: the codes order (codes-only), then the words order with its weight,
    then the cache window with its weight. Returns a config with the dev accuracies recorded.
    """
    n = len(codes) - start
    say = log or (lambda *_: None)
    m = model.with_config(context="codes")
    acc = _dev_hits(m, codes, words, start, lambda pc, pw, pk: pc) / n
    co = int(acc.argmax()) + 1
    tuned = {"dev_positions": n, "dev_codes_only_by_order": [round(float(a), 4) for a in acc]}
    say(f"dev codes-only top-1 by order: {tuned['dev_codes_only_by_order']} -> code order {co}")
    m = model.with_config(context="words", code_order=co)
    combos = [(wo, lw) for wo in range(1, model.words_lm.order + 1) for lw in WORD_WEIGHTS]
    acc = _dev_hits(m, codes, words, start,
                    lambda pc, pw, pk: [blend(pc[co - 1], pw[wo - 1], None, lw, 0, 0) for wo, lw in combos]) / n
    wo, lw = combos[int(acc.argmax())]
    tuned["dev_words"] = round(float(acc.max()), 4)
    say(f"dev words top-1 {tuned['dev_words']:.4f} -> word order {wo}, word weight {lw}")
    best = (-1.0, 0.0, 0.0)
    for decay in CACHE_DECAYS:
        m = model.with_config(context="words+cache", code_order=co, word_order=wo, word_weight=lw, cache_decay=decay)
        acc = _dev_hits(m, codes, words, start, lambda pc, pw, pk: [blend(pc, pw, pk, lw, *cb) for cb in CACHE_WEIGHTS],
                        all_orders=False) / n
        say(f"dev words+cache decay {decay:g}: top-1 {acc.max():.4f} at cache, bigram cache weights "
            f"{CACHE_WEIGHTS[int(acc.argmax())]}")
        if acc.max() > best[0]:
            best = (float(acc.max()), decay, CACHE_WEIGHTS[int(acc.argmax())])
    tuned["dev_words_cache"] = round(best[0], 4)
    return KNConfig(code_order=co, word_order=wo, word_weight=lw, cache_weight=best[2][0], bigram_weight=best[2][1],
                    cache_decay=best[1], tuned=tuned)


def train_kn(words: Sequence[str], vocab: Vocab, order: int = 4, tune_on_dev: bool = True, log=None) -> KN:
    """A kn model of orders up to `order` on `words`, its settings tuned on a dev slice carved from the
    end of `words` (a model trained on the rest; at most MAX_DEV_WORDS scored), then retrained on all."""
    if order < 1:
        raise UserError(f"--order must be at least 1, got {order}")
    config = KNConfig(code_order=order, word_order=order)
    if tune_on_dev:
        fit, _ = dev_split(words)
        dev_model = KN.train(fit, Vocab.build(fit), config)
        config = tune(dev_model, words, words, max(len(fit), len(words) - MAX_DEV_WORDS), log)
    return KN.train(words, vocab, config, max_code_order=order, max_word_order=order)


# ------------------------------------------------------------------------------------- save/load


def save(model, out: Path, meta: dict) -> None:
    """model.json (kind, settings, provenance), vocab.json, arrays.npz; written to a temporary
    directory first and renamed, so an interrupted save never leaves a half model behind."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.vocab.save(tmp / "vocab.json")
    if isinstance(model, Backoff):
        arrays, info = model.a, {"order": model.order}
    else:
        arrays = {f"codes_{k}": v for k, v in model.codes_lm.a.items()} | {f"words_{k}": v for k, v in model.words_lm.a.items()}
        info = {"config": asdict(model.config), "max_code_order": model.codes_lm.order,
                "max_word_order": model.words_lm.order}
    np.savez(tmp / "arrays.npz", **arrays)
    (tmp / "model.json").write_text(json.dumps({"kind": model.kind, "format": FORMAT_VERSION, **info, **meta}, indent=1))
    if out.exists():
        old = out.with_name(out.name + ".old")
        os.replace(out, old)
        os.replace(tmp, out)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        os.replace(tmp, out)


def load(path: Path):
    """A model directory written by `save` (`jax-llm ime train-ngram`)."""
    path = Path(path)
    try:
        meta = json.loads((path / "model.json").read_text())
        vocab = Vocab.load(path / "vocab.json")
        with np.load(path / "arrays.npz") as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot load model from {path}: {e}") from None
    if meta.get("kind") == "backoff":
        return Backoff(vocab, meta["order"], arrays)
    if meta.get("kind") == "kn":
        part = lambda pre: {k[len(pre):]: v for k, v in arrays.items() if k.startswith(pre)}  # noqa: E731
        return KN(vocab, KNTable(meta["max_code_order"], NUM_CODES, part("codes_")),
                  KNTable(meta["max_word_order"], len(vocab), part("words_")), KNConfig(**meta["config"]))
    raise UserError(f"{path}: unknown model kind {meta.get('kind')!r}")


def train(kind: str, words: Sequence[str], vocab: Vocab, order: int | None = None, log=None):
    """Train a `backoff` (default order 6) or `kn` (default max order 4, tuned) model on `words`."""
    if kind == "backoff":
        if order is not None and order < 1:
            raise UserError(f"--order must be at least 1, got {order}")
        return Backoff.train(words, vocab, order or 6)
    if kind == "kn":
        return train_kn(words, vocab, order or 4, log=log)
    raise UserError(f"unknown n-gram model {kind!r}; one of {', '.join(MODEL_KINDS)}")


def default_model_dir(kind: str) -> Path:
    env = os.environ.get("JAX_LLM_CACHE_DIR")
    root = Path(env) if env else Path.home() / ".cache" / "jax-llm"
    return root / "models" / f"{kind}-shakespeare"


def load_or_train_default(kind: str):
    """The `kind` model trained on `shakespeare` (train split, train-only vocabulary), cached."""
    d = default_model_dir(kind)
    if not (d / "model.json").is_file():
        from jax_llm.ime.words import load_corpus

        corpus = load_corpus("shakespeare")
        vocab = Vocab.build(corpus.train)
        save(train(kind, corpus.train, vocab), d, {"dataset": "shakespeare", "vocab": "train"})
    return load(d)
