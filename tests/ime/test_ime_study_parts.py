"""Keystroke savings as the harness counts them, and the Transformer's own recency cache."""

import math

import pytest

from jax_llm.ime.study.evaluate import keys_saved
from jax_llm.ime.predictor import Predictor
from jax_llm.ime.combine import RecentWords, WithCache, mix


def test_keys_saved_counts_codes_picks_pages_and_spelling():
    truth = ["the", "cat", "zebra", "dog"]
    ranked = [["the", "thee"], ["car", "cat"], ["zeal"], [f"d{i}" for i in range(10)] + ["dog"]]
    # the: code 2; cat: code 2 + digit 1; zebra: spelled /zebra + space = 7; dog: code 2 + one page + digit = 4
    full = sum(len(w) + 1 for w in truth)
    assert keys_saved(ranked, truth) == pytest.approx(1 - (2 + 3 + 7 + 4) / full)
    assert keys_saved([[w] for w in truth], truth) == pytest.approx(1 - 8 / full)


def test_recent_words_decay_and_follow_the_previous_word():
    cache = RecentWords(decay=2.0)
    for w in ["the", "cat", "thee", "cat", "the"]:
        cache.push(w)
    shares = cache.shares("th")  # "the" at ages 0 and 4, "thee" at age 2
    want = {"the": 1 + math.exp(-2), "thee": math.exp(-1)}
    assert shares == pytest.approx({w: v / sum(want.values()) for w, v in want.items()})
    assert cache.shares("ca", follow=True) == {"cat": 1.0}  # what followed "the", the last word
    assert cache.shares("th", follow=True) == {}  # nothing of code "th" has followed "the"
    cache.push("cat")
    after_cat = {"thee": math.exp(-1.5), "the": math.exp(-0.5)}  # ages 3 and 1
    assert cache.shares("th", follow=True) == pytest.approx({w: v / sum(after_cat.values()) for w, v in after_cat.items()})
    assert cache.shares("do") == {}


def test_mixing_the_caches_raises_a_repeated_word():
    ranked = [("the", math.log(0.6)), ("thee", math.log(0.3)), ("thou", math.log(0.1))]
    mixed = dict(mix(ranked, [({"thou": 1.0}, 0.5), ({}, 0.3)], 3))  # the empty cache's weight stays
    assert mixed["thou"] == pytest.approx(math.log(0.55)) and mixed["the"] == pytest.approx(math.log(0.3))
    assert [w for w, _ in mix(ranked, [], 2)] == ["the", "thee"]


class Fixed(Predictor):
    """A model that always ranks the same two words."""

    def candidates(self, code, context, k=10, ahead=()):
        return [("the", math.log(0.7)), ("thee", math.log(0.3))][:k]


def test_with_cache_agrees_per_position_in_batch_and_while_typing():
    words = ["thee", "thee", "cat", "thee", "the", "thee", "cat", "the"]
    codes = [w[:2] for w in words]
    model = WithCache(Fixed(), code=0.5, follow=0.2, decay=3.0)
    batch = model.rank_split(codes, words, 2, start=1)
    typed = [[w for w, _ in model.candidates(codes[i], words[:i], 2)] for i in range(1, len(words))]  # grows
    fresh = [[w for w, _ in WithCache(Fixed(), 0.5, 0.2, 3.0).candidates(codes[i], words[:i], 2)]
             for i in range(1, len(words))]
    assert batch == typed == fresh and batch[0] == ["thee", "the"]  # "thee" typed once: 0.25*0.3+0.5 > 0.35
    jumps = WithCache(Fixed(), 0.5, 0.2, 3.0)  # contexts that grow by several words (phrase after phrase)
    assert [[w for w, _ in jumps.candidates(codes[i], words[:i], 2)] for i in (1, 4, 7)] == [fresh[0], fresh[3],
                                                                                             fresh[6]]


def test_the_own_cache_passes_the_later_codes_to_a_lookahead_model():
    from jax_llm.ime.predictor import Predictor

    class Ahead(Predictor):
        lookahead = 1

        def candidates(self, code, context, k=10, ahead=()):
            ranked = [(code + "a", -0.5), (code + "b", -1.0)]
            return (ranked[::-1] if ahead else ranked)[:k]

    cached = WithCache(Ahead(), code=0.0, follow=0.0)
    assert [w for w, _ in cached.candidates("th", [], 2)] == ["tha", "thb"]
    assert [w for w, _ in cached.candidates("th", [], 2, ahead=["ca"])] == ["thb", "tha"]


def test_shares_after_a_hypothesis_equal_the_shares_once_its_words_are_pushed():
    from jax_llm.ime.combine import RecentWords

    words, hypothesis = ["thee", "cat", "the", "thee", "cat"], ["the", "cat", "thee"]
    cache, pushed = RecentWords(3.0), RecentWords(3.0)
    for w in words:
        cache.push(w)
        pushed.push(w)
    for w in hypothesis:
        pushed.push(w)
    for follow in (False, True):
        for code in ("th", "ca"):
            got, want = cache.shares(code, follow, after=hypothesis), pushed.shares(code, follow)
            assert got.keys() == want.keys() and all(abs(got[w] - want[w]) < 1e-12 for w in want)
    assert cache.now == len(words)  # the cache itself did not move
