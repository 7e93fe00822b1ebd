"""Keystroke savings as the harness counts them, and the Transformer's own recency cache."""

import math

import pytest

from jax_llm.ime.evaluate import keys_saved
from jax_llm.ime.session_cache import RecentWords, WithCache, mix


def test_keys_saved_counts_codes_picks_pages_and_spelling():
    truth = ["the", "cat", "zebra", "dog"]
    ranked = [["the", "thee"], ["car", "cat"], ["zeal"], [f"d{i}" for i in range(10)] + ["dog"]]
    # the: code 2; cat: code 2 + digit 1; zebra: spelled /zebra + space = 7; dog: code 2 + one page + digit = 4
    full = sum(len(w) + 1 for w in truth)
    assert keys_saved(ranked, truth) == pytest.approx(1 - (2 + 3 + 7 + 4) / full)
    assert keys_saved([[w] for w in truth], truth) == pytest.approx(1 - 8 / full)


def test_recent_words_forget_beyond_the_window():
    cache = RecentWords(window=3)
    for w in ["the", "cat", "the", "thee"]:
        cache.push(w)
    assert cache.shares("th") == {"the": 0.5, "thee": 0.5}  # the first "the" has left the window
    assert cache.shares("ca") == {"cat": 1.0} and cache.shares("do") == {}


def test_mixing_the_cache_raises_a_repeated_word():
    ranked = [("the", math.log(0.6)), ("thee", math.log(0.3)), ("thou", math.log(0.1))]
    mixed = dict(mix(ranked, {"thou": 1.0}, 0.5, 3))
    assert mixed["thou"] == pytest.approx(math.log(0.55)) and mixed["the"] == pytest.approx(math.log(0.3))
    assert [w for w, _ in mix(ranked, {}, 0.5, 2)] == ["the", "thee"]


class Fixed:
    """A model that always ranks the same two words."""

    def candidates(self, code, context, k=10):
        return [("the", math.log(0.7)), ("thee", math.log(0.3))][:k]


def test_with_cache_agrees_per_position_and_in_batch():
    words = ["thee", "thee", "cat", "thee", "the", "thee"]
    codes = ["th", "th", "ca", "th", "th", "th"]
    model = WithCache(Fixed(), weight=0.5, window=4)
    batch = model.rank_split(codes, words, 2, start=1)
    one_by_one = [[w for w, _ in model.candidates(codes[i], words[:i], 2)] for i in range(1, len(words))]
    assert batch == one_by_one and batch[0] == ["thee", "the"]  # "thee" typed once: 0.5*0.3 + 0.5 > 0.35
