"""Baseline: a character n-gram with interpolated modified Kneser-Ney, in bits per UTF-8 byte of the val
split that `jax-llm train` scores (the same `data.split_offset`), so a model's val bits per byte has a
yardstick. It prints figures and never fails on them.

    python benchmarks/char_ngram.py ../shared/data/aozora_sample.txt [--order 5] [--val-fraction 0.1]

Trained on the train characters; the alphabet is every character of the file (as the char tokenizer's),
so a character that never occurs in train still gets the uniform share of the lowest level. The history
of a val character is the text before it, across the split as the model's is. Bits per byte = bits per
character x characters / bytes. The counts and discounts are those of the input method's Kneser-Ney
tables (Chen & Goodman's D1, D2, D3+ per level): numpy arrays of sorted int64 keys, no Python loop over
the text.
"""

import argparse
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jax_llm.data import split_offset
from jax_llm.ime.ngram.kn_table import _estimate
from jax_llm.ime.ngram.sorted_keys import find
from jax_llm.textfile import check_text_file


class Level(NamedTuple):
    """The contexts of m characters: history key m (parent context id x alphabet + the character m back;
    row = context id), and their events (context id x n_chars + next character, sorted)."""

    history_keys: np.ndarray | None  # None at m = 0 (one empty context, id 0)
    event_keys: np.ndarray
    gamma: tuple[np.ndarray, np.ndarray]  # per context: (raw counts, continuation counts) mass left below
    probs: tuple[np.ndarray, np.ndarray]  # per event: the discounted probability, the same two ways


class CharKN:
    def __init__(self, order: int, n_chars: int, levels: list[Level]):
        self.order, self.n_chars, self.levels = order, n_chars, levels
        self.bos, self.alphabet = n_chars, n_chars + 1  # history symbol before the text's start

    @classmethod
    def train(cls, ids: np.ndarray, order: int, n_chars: int) -> "CharKN":
        """`ids`: the train characters as ids in [0, n_chars)."""
        n, alphabet = len(ids), n_chars + 1
        ctx = np.zeros(n, np.int64)
        history_keys, events = [None], []
        for m in range(order):
            if m:
                back = np.full(n, n_chars, np.int64)
                back[m:] = ids[: n - m]
                keys, ctx = np.unique(ctx * alphabet + back, return_inverse=True)
                history_keys.append(keys)
            events.append(np.unique(ctx * n_chars + ids, return_counts=True))
        levels = []
        for m, (event, raw) in enumerate(events):
            cont = raw
            if m + 1 < order:  # continuation count: the distinct characters seen before (context, c)
                longer = events[m + 1][0]
                parent = history_keys[m + 1][longer // n_chars] // alphabet
                below = np.sort(parent * n_chars + longer % n_chars)
                cont = np.searchsorted(below, event, "right") - np.searchsorted(below, event, "left")
            context = event // n_chars
            first = np.flatnonzero(np.r_[True, context[1:] != context[:-1]])  # contexts 0, 1, ... in order
            starts = np.r_[first, len(event)]
            (gr, pr), (gc, pc) = _estimate(raw, first, starts), _estimate(cont, first, starts)
            levels.append(Level(history_keys[m], event, (gr, gc), (pr, pc)))
        return cls(order, n_chars, levels)

    def prob(self, ids: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """P(targets[j] | the characters of `ids` before positions[j]), for every j at once."""
        p = np.full(len(positions), 1.0 / self.n_chars)
        ctx, seen = np.zeros(len(positions), np.int64), np.ones(len(positions), bool)
        for m, level in enumerate(self.levels):
            if m:
                back = np.where(positions >= m, ids[np.maximum(positions - m, 0)], self.bos)
                ctx = find(level.history_keys, ctx * self.alphabet + back)
                seen &= ctx >= 0  # an unseen context is unseen at every longer length too
            kind = int(m < self.order - 1)  # raw counts at the top level, continuation counts below
            at = np.flatnonzero(seen)
            event = find(level.event_keys, ctx[at] * self.n_chars + targets[at])
            p[at] = p[at] * level.gamma[kind][ctx[at]] + np.where(event >= 0, level.probs[kind][event], 0.0)
        return p

    def distribution(self, ids: np.ndarray, position: int) -> np.ndarray:
        """P over the whole alphabet of the character at `position`, given the characters before it."""
        return self.prob(ids, np.full(self.n_chars, position), np.arange(self.n_chars))


def char_ids(text: str) -> tuple[np.ndarray, int]:
    """The text as ids of its sorted distinct characters, and how many there are."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    alphabet, ids = np.unique(codes, return_inverse=True)
    return ids.astype(np.int64), len(alphabet)


def val_bits(path: Path, order: int, val_fraction: float) -> dict:
    """Train on the train split of `path`, score its val split: bits per character and per byte."""
    raw = Path(path).read_bytes()
    cut = split_offset(path, val_fraction)
    n_train = len(raw[:cut].decode("utf-8"))
    ids, n_chars = char_ids(raw.decode("utf-8"))
    model = CharKN.train(ids[:n_train], order, n_chars)
    positions = np.arange(n_train, len(ids))
    bits = float(-np.log2(model.prob(ids, positions, ids[positions])).sum())
    n_val, val_bytes = len(positions), len(raw) - cut
    return dict(n_chars=n_chars, train_chars=n_train, val_chars=n_val, val_bytes=val_bytes, split_byte=cut,
                bits_per_char=bits / max(n_val, 1), bits_per_byte=bits / max(val_bytes, 1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("text", type=Path, help="UTF-8 text file")
    p.add_argument("--order", type=int, default=5, help="characters per n-gram (default 5)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="as `jax-llm train`'s val_fraction (0.1)")
    args = p.parse_args(argv)
    check_text_file(args.text)
    if args.order < 1 or not 0 < args.val_fraction < 1:
        sys.exit("char_ngram.py: need --order >= 1 and 0 < --val-fraction < 1")
    t0 = time.perf_counter()
    r = val_bits(args.text, args.order, args.val_fraction)
    print(f"{args.text}: {r['n_chars']:,} distinct characters; train {r['train_chars']:,} characters, val "
          f"{r['val_chars']:,} characters = {r['val_bytes']:,} bytes (from byte {r['split_byte']:,})")
    print(f"character {args.order}-gram, interpolated modified Kneser-Ney: val {r['bits_per_char']:.4f} bits per "
          f"character, {r['bits_per_byte']:.4f} bits per byte ({r['bits_per_byte'] * math.log(2):.4f} nats per "
          f"byte); {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
