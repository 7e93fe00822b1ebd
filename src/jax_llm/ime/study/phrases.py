"""The phrase protocol, beside the online one: the writer types a whole phrase, the input method converts
it at its end (`Predictor.convert_phrases`), and the writer then fixes the words that are wrong.

Phrases are cut at the punctuation and line ends of the original text (`words.phrase_ends`). The words
before a phrase are confirmed (the true words); the words inside it are not: each is decoded from the
phrase's codes and the model's own choices before it. Figures: word accuracy (the share of words right
after the conversion), phrase exact-match (the share of phrases with every word right), and keys saved
against typing each word in full plus a space, when each word costs its code (2 keys) and a wrong one
is then fixed: picked with its digit (and a `>` per page of nine before its own; at least one key) among
the candidates the model ranks for it with the true words before it (the harness's `rank_split`), or
spelled in full (`keys.spell_keys`) when that is cheaper or it is not among them.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jax_llm.ime.language.codes import word_code
from jax_llm.ime.language.keys import CODE_KEYS, pick_keys, spell_keys
from jax_llm.ime.predictor import ContextView, Predictor
from jax_llm.ime.study.evaluate import DEPTH


def spans(ends: np.ndarray, start: int, stop: int) -> list[tuple[int, int]]:
    """[a, b) of each phrase in words start..stop-1 (the first one starts at `start`)."""
    cuts = [start] + [int(i) + 1 for i in np.flatnonzero(ends[start:stop]) + start]
    if cuts[-1] != stop:
        cuts.append(stop)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


@dataclass
class PhraseRow:
    model: str
    word_acc: float
    exact: float
    keys_saved: float
    phrases: int
    words: int


def score_phrases(model: Predictor, words: Sequence[str], ends: np.ndarray, start: int, label: str,
                  beam: int) -> PhraseRow:
    """The phrase protocol over words start.. (the words before `start` are the first context)."""
    codes = [word_code(w) for w in words]
    cut = spans(ends, start, len(words))
    got = model.convert_phrases([(ContextView(words, a), codes[a:b], {}) for a, b in cut], beam)
    right = [g == t for (a, b), out in zip(cut, got) for g, t in zip(out, words[a:b])]
    fixes = model.rank_split(codes, words, DEPTH, start)  # what the writer picks a wrong word from
    truth = words[start:]
    cost = sum(CODE_KEYS + (0 if ok else fix_keys(w, ranked)) for ok, w, ranked in zip(right, truth, fixes))
    exact = sum(all(out[j] == words[a + j] for j in range(b - a)) for (a, b), out in zip(cut, got))
    full = sum(len(w) + 1 for w in truth)
    return PhraseRow(label, sum(right) / len(right), exact / len(cut), 1 - cost / full, len(cut), len(right))


def fix_keys(word: str, ranked: Sequence[str]) -> int:
    """Keys that replace a wrong word by `word`: its pick among `ranked`, or spelling it."""
    rank = list(ranked).index(word) + 1 if word in ranked else None
    return min(spell_keys(word), max(1, pick_keys(rank)) if rank else spell_keys(word))
