"""The word side: a corpus as a word stream, the study's 90/10 split by position, and the vocabulary.

The vocabulary is the output side of every model. By default it is built from the train split only,
so test words never seen in training are out-of-vocabulary (OOV) and count as errors, as they would for
a real user. The published study built it from the whole file; `whole_file=True` reproduces that.
"""

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from jax_llm import datasets
from jax_llm.errors import UserError
from jax_llm.ime.language.codes import NUM_CODES, code_id, code_ids, normalize, word_code
from jax_llm.ime.modelfiles import read_json
from jax_llm.textfile import read_text

MIN_WORDS = 20  # fewer cannot be split into train and test usefully
TRAIN_FRACTION = 0.9
UNK = "<unk>"


@dataclass
class WordCorpus:
    """A word stream split by position: the first 90% is train, the rest test (no shuffling). (The
    language models' corpus of tokens is `jax_llm.data.Corpus`.)"""

    name: str
    words: list[str]
    phrase_ends: np.ndarray | None = None  # True at each word that ends a phrase of the text (`phrase_ends`)

    @property
    def n_train(self) -> int:
        return int(len(self.words) * TRAIN_FRACTION)

    @property
    def train(self) -> list[str]:
        return self.words[: self.n_train]

    @property
    def test(self) -> list[str]:
        return self.words[self.n_train :]


def load_corpus(name_or_path: str, data_dir=None) -> WordCorpus:
    path = datasets.resolve(name_or_path, data_dir)
    text = read_text(path) if path.stat().st_size else ""  # empty: "has 0 words" below
    words = normalize(text)
    if len(words) < MIN_WORDS:
        raise UserError(f"{path} has {len(words)} words (letters a-z); need at least {MIN_WORDS}")
    return WordCorpus(name_or_path, words, phrase_ends(text))


PHRASE_END = re.compile(r"[.,;:!?\n]")  # what ends a phrase in the text: the marks and Enter that end one when typing


def phrase_ends(text: str) -> np.ndarray:
    """For each word of `normalize(text)`: whether a phrase of the text ends with it (the text's next
    character outside a-z that is not a space, quote, bracket or hyphen is one of PHRASE_END)."""
    ends = []
    for piece in PHRASE_END.split(text):
        n = len(normalize(piece))
        ends += [False] * (n - 1) + [True] if n else []
    if ends:
        ends[-1] = True
    return np.array(ends, bool)


def dev_split(train: Sequence[str]) -> tuple[list[str], list[str]]:
    """A dev slice carved from the end of train (same 90/10 rule) for tuning; test stays untouched."""
    cut = int(len(train) * TRAIN_FRACTION)
    return list(train[:cut]), list(train[cut:])


class Vocab:
    """Word <-> id (id 0 is UNK), each word's code id, and each code's words, most frequent first."""

    def __init__(self, words: Sequence[str], counts: Sequence[int]):
        self.words = [UNK, *words]
        self.counts = np.array([0, *counts], dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.code_of = np.r_[-1, code_ids(words)].astype(np.int32)
        no_code = np.flatnonzero(self.code_of < 0)[1:]  # UNK aside
        if len(no_code):
            code_id(word_code(self.words[no_code[0]]))  # raises the UserError that names it
        order = np.argsort(self.code_of[1:], kind="stable") + 1  # words arrive most frequent first
        starts = np.searchsorted(self.code_of[order], np.arange(NUM_CODES + 1))
        self.by_code = [order[starts[c] : starts[c + 1]] for c in range(NUM_CODES)]

    @cached_property
    def place_in_code(self) -> np.ndarray:
        """Each word's position among its code's candidates (`by_code[code_of[w]]`); 0 for UNK. A model
        that scores only the typed code's words uses it as the word's column."""
        place = np.zeros(len(self.words), np.int64)
        for ids in self.by_code:
            place[ids] = np.arange(len(ids))
        return place

    @classmethod
    def build(cls, words: Iterable[str]) -> "Vocab":
        counts = Counter(words)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([w for w, _ in ranked], [c for _, c in ranked])

    def grouped(self) -> "Vocab":
        """The same words with ids grouped by code (each code's words contiguous, most frequent first): the
        layout the Transformer's candidate-only output layer reads (`ime.candidates`)."""
        order = np.argsort(self.code_of[1:], kind="stable") + 1
        return Vocab([self.words[i] for i in order], self.counts[order].tolist())

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: Iterable[str]) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(w, 0) for w in words), dtype=np.int32)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"words": self.words[1:], "counts": self.counts[1:].tolist()}))

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        """vocab.json as `save` writes it; a damaged one is refused with one line naming it."""
        d = read_json(path, {"words": list, "counts": list})
        words, counts = d["words"], d["counts"]
        if len(words) != len(counts):
            raise UserError(f"{path}: {len(words)} words but {len(counts)} counts")
        if not all(isinstance(w, str) for w in words) or not all(type(c) is int for c in counts):
            raise UserError(f"{path}: 'words' should hold strings and 'counts' integers")
        try:
            return cls(words, counts)
        except UserError as e:  # a word without a code
            raise UserError(f"{path}: {e}") from None
