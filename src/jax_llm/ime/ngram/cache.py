"""The recency caches of the kn model: the confirmed words as ids, codes and candidate columns
(`ConfirmedWords`), and the share of each candidate among the cached words before a position."""

from collections.abc import Sequence

import numpy as np

from jax_llm.ime.language.codes import code_ids
from jax_llm.ime.ngram.sorted_keys import ranges
from jax_llm.ime.language.words import Vocab


class ConfirmedWords:
    """Ids of a confirmed word stream. A word outside the vocabulary gets an id from len(vocab) up: the
    cache learns it (an input method learns the word a user corrected it to). Per position: `ids`, `codes`
    (the word's code id, -1 if none) and `columns` (its column among that code's candidates); `extra[code]`
    lists a code's new words in column order.

    For keystrokes, it keeps only the last `keep` words of a context (`of`), and `follow` moves on to the
    same context grown by one word without re-reading it: it checks the last TAIL words and the length,
    and assumes older words unchanged (an edit further back than that is not seen by the caches until the
    next context that does not follow)."""

    TAIL = 64

    def __init__(self, vocab: Vocab, words: Sequence[str], keep: int | None = None, total: int | None = None):
        self.vocab, self.keep = vocab, keep
        self.total = len(words) if total is None else total  # length of the whole context seen
        self.tail = list(words[-self.TAIL :])
        ids = self.vocab.encode(words).astype(np.int64)
        self.new: dict[str, tuple[int, int, int]] = {}  # word -> (id, code, column)
        self.extra: dict[int, list[str]] = {}
        codes, columns = self.vocab.code_of[ids].astype(np.int64), self.vocab.place_in_code[ids]
        for i in np.flatnonzero(ids == 0).tolist():
            ids[i], codes[i], columns[i] = self._new(words[i])
        n = len(ids)
        self._buf = np.zeros((3, 2 * max(n, keep or 0) + 16), np.int64)  # ids, codes, columns; appended in place
        self._buf[:, :n] = ids, codes, columns
        self._lo, self._hi = 0, n

    ids = property(lambda self: self._buf[0, self._lo : self._hi])
    codes = property(lambda self: self._buf[1, self._lo : self._hi])
    columns = property(lambda self: self._buf[2, self._lo : self._hi])

    @classmethod
    def of(cls, vocab: Vocab, context: Sequence[str], keep: int) -> "ConfirmedWords":
        return cls(vocab, list(context[len(context) - keep :]) if len(context) > keep else list(context), keep,
                   len(context))

    def _new(self, word: str) -> tuple[int, int, int]:
        if word not in self.new:
            code = int(code_ids([word])[0])
            got = self.extra.setdefault(code, [])
            got.append(word)
            column = len(self.vocab.by_code[code]) + len(got) - 1 if code >= 0 else 0
            self.new[word] = (len(self.vocab) + len(self.new), code, column)
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
        if wid:
            wid, code, column = wid, int(self.vocab.code_of[wid]), int(self.vocab.place_in_code[wid])
        else:
            wid, code, column = self._new(word)
        if self._hi == self._buf.shape[1]:  # full: move the kept words to the front (amortised O(1))
            n = self._hi - self._lo
            self._buf[:, :n] = self._buf[:, self._lo : self._hi]
            self._lo, self._hi = 0, n
        self._buf[:, self._hi] = wid, code, column
        self._hi += 1
        if self.keep is not None and self._hi - self._lo > self.keep:
            self._lo += 1
        self.tail = [*self.tail[-(T - 1) :], word]
        self.total = n
        return True


def cache_probs_batch(pos: np.ndarray, keyed: np.ndarray, base, columns: np.ndarray, n_cols: int, window: int,
                      decay: float) -> np.ndarray:
    """Decayed share of each candidate among the cached words in the `window` words before each position.
    `keyed`: sorted key * stride + stream position of the cached words; `base`: each query's key * stride
    (0 with a single key); `columns`: each stream position's candidate column."""
    base = np.broadcast_to(base, pos.shape)
    a = np.searchsorted(keyed, base + np.maximum(pos - window, 0))  # never into the previous key's range
    b = np.searchsorted(keyed, base + pos)
    row = np.repeat(np.arange(len(pos)), b - a)
    t = keyed[ranges(a, b)] - base[row]
    weight = np.exp((t - pos[row]) / decay)
    counts = np.bincount(row * n_cols + columns[t], weight, len(pos) * n_cols).reshape(len(pos), n_cols)
    return counts / np.maximum(counts.sum(1), 1e-300)[:, None]


def cache_probs(pos: int, occurrences: np.ndarray, columns: np.ndarray, n_cols: int, window: int,
                decay: float) -> np.ndarray:
    """`cache_probs_batch` for one position (a keystroke); `occurrences`: sorted positions of the cached
    words."""
    t = occurrences[np.searchsorted(occurrences, pos - window) :]
    counts = np.bincount(columns[t], np.exp((t - pos) / decay), n_cols)
    return counts / max(counts.sum(), 1e-300)
