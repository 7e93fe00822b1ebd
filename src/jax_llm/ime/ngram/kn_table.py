"""One interpolated modified-Kneser-Ney table, P(word | last m history symbols, typed code), for every m
below its order. The history symbols are codes (the codes table) or confirmed words (the words table)."""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jax_llm.ime.language.codes import NUM_CODES
from jax_llm.ime.ngram.sorted_keys import find, find_one, ranges
from jax_llm.ime.language.words import Vocab


class KNLevel(NamedTuple):
    """Level m of a table: the contexts (the last m history symbols and the typed code) and their events
    (the words seen in each context). `raw_*` is the raw-count estimate, used at the top level of a query,
    `cont_*` the continuation-count one, used below it. A history is a path in a trie: its id is the row
    of its key in `history_keys`, and the empty history (level 0) is id 0."""

    history_keys: np.ndarray | None  # sorted parent history id * alphabet + symbol; None at level 0
    context_keys: np.ndarray  # sorted history id * 702 + code; row = context
    event_starts: np.ndarray  # context row r's events are event_starts[r]:event_starts[r + 1]
    event_places: np.ndarray  # per event, the word's place among its code's candidates (`Vocab.place_in_code`)
    raw_gamma: np.ndarray  # per context, the mass the discounts leave to the level below
    cont_gamma: np.ndarray
    raw_probs: np.ndarray  # per event, the word's discounted probability in its context
    cont_probs: np.ndarray
    ON_DISK = ("trie", "ctx", "start", "idx", "gr", "gc", "ar", "ac")  # names in arrays.npz, suffixed by m

    def gamma(self, top: bool) -> np.ndarray:
        return self.raw_gamma if top else self.cont_gamma

    def probs(self, top: bool) -> np.ndarray:
        return self.raw_probs if top else self.cont_probs


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified-KN discounts D1, D2, D3+ from the count-of-counts (Chen & Goodman), safe on tiny data."""
    n = [int((counts == r).sum()) for r in (1, 2, 3, 4)]
    if min(n) == 0:
        return np.array([0.5, 1.0, 1.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.clip(d, 0.05, [0.95, 1.95, 2.95])


def _estimate(counts: np.ndarray, first: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gamma per context, discounted probability per event) from the events' counts; each context's
    events are starts[r]:starts[r + 1], and first = starts[:-1]."""
    discount = _discounts(counts)[np.minimum(counts, 3) - 1]
    total = np.add.reduceat(counts, first).astype(np.float64)
    probs = ((counts - discount) / np.repeat(total, np.diff(starts))).astype(np.float32)
    return (np.add.reduceat(discount, first) / total).astype(np.float32), probs


class KNTable:
    """P(w | last m history symbols, code) for m = 0..order-1, interpolated modified Kneser-Ney. Each level
    keeps both estimates, so one table of order N answers exactly as a table trained at any order <= N."""

    def __init__(self, order: int, n_symbols: int, levels: Sequence[KNLevel]):
        self.order, self.levels = order, list(levels)
        self.bos = n_symbols  # the history symbol before the start
        self.alphabet = n_symbols + 1  # history symbols, BOS included

    @classmethod
    def train(cls, history: np.ndarray, words: np.ndarray, codes: np.ndarray, vocab: Vocab, order: int,
              n_symbols: int) -> "KNTable":
        alphabet, n_vocab, n = n_symbols + 1, len(vocab), len(words)
        history_id = np.zeros(n, np.int64)
        history_keys, events = [None], []
        for m in range(order):
            if m:
                symbol = np.full(n, n_symbols, np.int64)  # BOS before the start
                symbol[m:] = history[: n - m]
                keys, history_id = np.unique(history_id * alphabet + symbol, return_inverse=True)
                history_keys.append(keys)
            events.append(np.unique((history_id * NUM_CODES + codes) * n_vocab + words, return_counts=True))
        levels = []
        for m in range(order):
            event, raw = events[m]
            if m + 1 < order:  # continuation count: distinct one-longer histories seen before (h, c, w)
                longer = events[m + 1][0]
                context, word = longer // n_vocab, longer % n_vocab
                parent = history_keys[m + 1][context // NUM_CODES] // alphabet
                parent_events = np.sort((parent * NUM_CODES + context % NUM_CODES) * n_vocab + word)
                cont = np.searchsorted(parent_events, event, "right") - np.searchsorted(parent_events, event, "left")
            else:
                cont = raw
            context = event // n_vocab
            first = np.flatnonzero(np.r_[True, context[1:] != context[:-1]])
            starts = np.r_[first, len(event)]
            raw_gamma, raw_probs = _estimate(raw, first, starts)
            cont_gamma, cont_probs = _estimate(cont, first, starts)
            levels.append(KNLevel(history_keys[m], context[first], starts,
                                  vocab.place_in_code[event % n_vocab].astype(np.int32),
                                  raw_gamma, cont_gamma, raw_probs, cont_probs))
        return cls(order, n_symbols, levels)

    def rows(self, hist: np.ndarray, codes: np.ndarray, order: int) -> np.ndarray:
        """Context row per (position, level), -1 where unseen. hist[:, j] = symbol j+1 positions back."""
        n = len(codes)
        out = np.full((n, order), -1, np.int64)
        history_id = np.zeros(n, np.int64)
        alive = np.ones(n, bool)
        for m, level in enumerate(self.levels[:order]):
            if m:
                history_id = find(level.history_keys, history_id * self.alphabet + hist[:, m - 1])
                alive &= history_id >= 0
            row = find(level.context_keys, np.maximum(history_id, 0) * NUM_CODES + codes)
            out[:, m] = np.where(alive, row, -1)
        return out

    def rows_one(self, hist: Sequence[int], code: int, order: int) -> list[int]:
        """`rows` for one position with Python scalars (a keystroke): hist[j] = symbol j+1 back."""
        hist = [*hist[: order - 1], *[self.bos] * (order - 1 - len(hist))]  # BOS before the start
        out, history_id = [], 0
        for m, level in enumerate(self.levels[:order]):
            if m:
                history_id = find_one(level.history_keys, history_id * self.alphabet + hist[m - 1])
                if history_id < 0:
                    break
            row = find_one(level.context_keys, history_id * NUM_CODES + code)
            if row < 0:
                break
            out.append(row)
        return out + [-1] * (order - len(out))

    def probs(self, base: np.ndarray, rows: Sequence[int], order: int) -> np.ndarray:
        """P over one code's candidates, from the uniform `base` up through the context rows found. The
        order's top level uses raw counts, the levels below continuation counts (as in any interpolated
        KN model, an unseen context backs off to the lower-order, continuation-count estimate)."""
        p = base
        for m, level in enumerate(self.levels[:order]):
            row = rows[m]
            if row < 0:  # unseen here, so unseen above too
                break
            lo, hi = level.event_starts[row], level.event_starts[row + 1]
            top = m == order - 1
            p = p * level.gamma(top)[row]
            p[level.event_places[lo:hi]] += level.probs(top)[lo:hi]
        return p

    def probs_batch(self, n_cand: int, rows: np.ndarray, order: int, all_orders: bool = False):
        """`probs` for many positions with the same code at once: one (positions, n_cand) matrix per order."""
        p, outs = np.full((len(rows), n_cand), 1.0 / max(n_cand, 1)), []
        for m, level in enumerate(self.levels[:order]):
            pos = np.flatnonzero(rows[:, m] >= 0)  # a row unseen at level m is unseen above it too
            if not len(pos):
                outs.extend([p] * (order - m))
                break
            row, starts = rows[pos, m], level.event_starts
            event = ranges(starts[row], starts[row + 1])
            at = (np.repeat(pos, starts[row + 1] - starts[row]), level.event_places[event])
            scale = np.ones(len(rows))
            if all_orders or m == order - 1:
                scale[pos] = level.raw_gamma[row]
                q = p * scale[:, None]
                q[at] += level.raw_probs[event]
                outs.append(q)
            if m < order - 1:
                scale[pos] = level.cont_gamma[row]
                p = p * scale[:, None]
                p[at] += level.cont_probs[event]
        return outs if all_orders else outs[-1]
