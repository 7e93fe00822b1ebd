"""The published baseline: for each order k, count (code_{i-k+1..i}) -> word_i and predict the most
frequent word of the longest code context seen in training; ties go to the word seen first in training."""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jax_llm.errors import UserError
from jax_llm.ime.language.codes import NUM_CODES, code_id, code_ids
from jax_llm.ime.ngram.sorted_keys import find
from jax_llm.ime.language.words import Vocab
from jax_llm.ime.predictor import Predictor


class BackoffLevel(NamedTuple):
    """The contexts of one order k (k codes ending at the predicted position) and their words."""

    context_keys: np.ndarray  # sorted: the k codes as one base-702 number (`code_ngram_keys`); row = context
    starts: np.ndarray  # context row r's words are starts[r]:starts[r + 1]
    words: np.ndarray  # word ids; within a context most frequent first, ties: seen first in training
    counts: np.ndarray  # how often each followed its context
    ON_DISK = ("keys", "starts", "words", "counts")  # names in arrays.npz, suffixed by the order k


class Backoff(Predictor):
    """The published baseline. Scores are (context order + relative frequency): ranks, not probabilities."""

    kind = "backoff"

    def __init__(self, vocab: Vocab, levels: Sequence[BackoffLevel]):
        self.vocab, self.levels = vocab, list(levels)  # levels[k - 1]: order k

    @property
    def order(self) -> int:
        return len(self.levels)

    @classmethod
    def train(cls, words: Sequence[str], vocab: Vocab, order: int) -> "Backoff":
        word_ids, codes = vocab.encode(words).astype(np.int64), code_ids(words)
        levels = []
        for k in range(1, order + 1):
            context, word = code_ngram_keys(codes, k)[k - 1 :], word_ids[k - 1 :]
            position = np.arange(k - 1, len(words))
            by = np.lexsort((word, context))  # stable: each (context, word) group keeps its first position first
            context, word, position = context[by], word[by], position[by]
            group = np.flatnonzero(np.r_[True, (context[1:] != context[:-1]) | (word[1:] != word[:-1])])
            count = np.diff(np.r_[group, len(context)])
            context, word, first_seen = context[group], word[group], position[group]
            by = np.lexsort((first_seen, -count, context))  # within a context: most frequent first, ties: seen first
            context, word, count = context[by], word[by], count[by]
            first = np.flatnonzero(np.r_[True, context[1:] != context[:-1]])
            levels.append(BackoffLevel(context[first], np.r_[first, len(context)], word.astype(np.int32),
                                       count.astype(np.int32)))
        return cls(vocab, levels)

    def truncated(self, order: int) -> "Backoff":
        """The same model at a lower order (orders are counted independently, so this is exact)."""
        if not 1 <= order <= self.order:
            raise UserError(f"backoff order must be 1..{self.order}, got {order}")
        return Backoff(self.vocab, self.levels[:order])

    def _ranked(self, rows: Sequence[int], k: int) -> list[tuple[str, float]]:
        """rows[j] = row of the order-(j+1) context or -1; longest first, shorter ones fill up to k."""
        out, seen = [], set()
        for j in range(len(rows) - 1, -1, -1):
            if rows[j] < 0:
                continue
            level = self.levels[j]
            lo, hi = level.starts[rows[j] : rows[j] + 2]
            counts = level.counts[lo:hi]
            total = counts.sum()
            for word, n in zip(level.words[lo : min(hi, lo + k)].tolist(), counts[:k].tolist()):
                if word not in seen:
                    seen.add(word)
                    out.append((self.vocab.words[word], j + 1 + n / total))
            if len(out) >= k:
                break
        return out[:k]

    @property
    def label(self) -> tuple[str, str]:
        return "backoff", str(self.order)

    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        code_id(code)  # a string that is not a code: UserError
        codes = code_ids([*context[-(self.order - 1) :], code] if self.order > 1 else [code])
        rows = []
        for j in range(1, self.order + 1):
            if len(codes) < j or (codes[-j:] < 0).any():
                break
            rows.append(int(find(self.levels[j - 1].context_keys, code_ngram_keys(codes[-j:], j)[-1])))
        return self._ranked(rows, k)

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """`Predictor.rank_split` from the codes alone (the confirmed words are not needed); top-1 all in numpy."""
        rows = self._rows(code_ids(codes))[start:]
        if k > 1:
            return [[w for w, _ in self._ranked(r, k)] for r in rows.tolist()]
        names = self.vocab.words
        return [[names[i]] if i >= 0 else [] for i in self._top1(rows).tolist()]

    def top1_ids(self, codes: Sequence[str], start: int = 0) -> np.ndarray:
        """rank_split(..., k=1) as word ids (-1: no prediction), all in numpy."""
        return self._top1(self._rows(code_ids(codes))[start:])

    def _rows(self, codes: np.ndarray) -> np.ndarray:
        """Row of the order-(j+1) context at each position in column j, -1 where unseen."""
        rows = np.stack([find(level.context_keys, code_ngram_keys(codes, k)) for k, level in enumerate(self.levels, 1)],
                        1)
        for j in range(1, self.order):
            rows[:j, j] = -1  # no full context at the very start
        rows[codes < 0] = -1
        return rows

    def _top1(self, rows: np.ndarray) -> np.ndarray:
        """The head of the longest context found, per position."""
        best = np.where(rows >= 0, np.arange(1, self.order + 1), 0).argmax(1)
        out = np.full(len(rows), -1, np.int64)
        for j, level in enumerate(self.levels):
            r = rows[:, j]
            sel = (best == j) & (r >= 0)
            out[sel] = level.words[level.starts[r[sel]]]
        return out


def code_ngram_keys(codes: np.ndarray, k: int) -> np.ndarray:
    """key[i] = codes[i-k+1..i] as one base-702 number (702**6 < 2**63); rows i < k-1 are partial."""
    key = np.zeros(len(codes), np.int64)
    for j in range(k - 1, -1, -1):
        shifted = np.zeros(len(codes), np.int64)
        shifted[j:] = codes[: len(codes) - j] if j else codes
        key = key * NUM_CODES + shifted
    return key
