"""n-gram models: the backoff rule, Kneser-Ney as a distribution, the cache, the batch hook = per keystroke."""

import numpy as np
import pytest

from jax_llm.errors import UserError
from jax_llm.ime import ngram
from jax_llm.ime.language.codes import CODE_IDS, word_code
from jax_llm.ime.predictor import ContextView
from jax_llm.ime.study.evaluate import hit_rates
from jax_llm.ime.language.words import Vocab, load_corpus


@pytest.fixture(scope="module")
def tiny(data_dir):
    """The first 60,000 words of tinyshakespeare: 54,000 train, 6,000 test."""
    corpus = load_corpus("tinyshakespeare", data_dir)
    corpus.words = corpus.words[:60_000]
    return corpus


@pytest.fixture(scope="module")
def kn(tiny):
    return ngram.train_kn(tiny.train, Vocab.build(tiny.train), order=3)


def test_backoff_longest_context_most_frequent_first_seen_on_ties():
    words = "the cat sat on the car the car the cat then the cat".split()
    m = ngram.Backoff.train(words, Vocab.build(words), 2)
    assert [w for w, _ in m.candidates("ca", [], 3)] == ["cat", "car"]  # 3 cats vs 2 cars
    assert m.candidates("th", ["cat"], 1)[0][0] == "the"  # (ca, th): the 1, then 1: "the" came first
    assert m.candidates("ca", ["on", "the"], 1)[0][0] == "cat"  # (th, ca) seen: cat 3 car 2
    assert m.candidates("xq", ["the"], 5) == []
    batch = m.rank_split([word_code(w) for w in words], words, 2)
    assert batch == [[w for w, _ in m.candidates(word_code(x), words[:i], 2)] for i, x in enumerate(words)]
    assert m.truncated(1).rank_split(["ca"], ["cat"], 1) == [["cat"]]
    assert m.top1_ids([word_code(w) for w in words]).tolist() == [m.vocab.index[b[0]] for b in batch]


def test_kn_is_a_distribution_over_the_codes_words(kn):
    for code, ctx in [("th", ["i", "know"]), ("ca", []), ("wh", ["what"])]:
        ci = CODE_IDS[code]
        base = kn.base[ci]
        for table, hist in ((kn.codes_lm, [CODE_IDS[word_code(w)] for w in ctx[::-1]]),
                            (kn.words_lm, [kn.vocab.index.get(w, 0) for w in ctx[::-1]])):
            for order in range(1, table.order + 1):
                p = table.probs(base, table.rows_one(hist, ci, order), order)
                assert p.min() > 0 and abs(p.sum() - 1) < 1e-5


def test_kn_candidates_have_the_typed_code_and_the_batch_hook_agrees(kn, tiny):
    codes = [word_code(w) for w in tiny.words]
    start = tiny.n_train
    for context in ngram.CONTEXTS:
        m = kn.with_config(context=context)
        batch = m.rank_split(codes, tiny.words, 5, start)
        singles = [[w for w, _ in m.candidates(codes[i], ContextView(tiny.words, i), 5)]
                   for i in range(start, start + 400)]
        assert batch[:400] == singles
        early = m.rank_split(codes[:300], tiny.words[:300], 5)  # the document's start: caches nearly empty
        assert early == [[w for w, _ in m.candidates(codes[i], tiny.words[:i], 5)] for i in range(300)]
        assert all(word_code(w) == codes[start + j] for j, r in enumerate(batch) for w in r)
    assert kn.rank_split(codes, tiny.words, 1, start) == [r[:1] for r in kn.rank_split(codes, tiny.words, 5, start)]


def test_kn_beats_backoff_and_each_context_adds(kn, tiny):
    codes = [word_code(w) for w in tiny.words]
    start, test = tiny.n_train, tiny.test
    acc = {c: hit_rates(kn.with_config(context=c).rank_split(codes, tiny.words, 1, start), test, (1,))[1]
           for c in ngram.CONTEXTS}
    backoff = ngram.Backoff.train(tiny.train, kn.vocab, 3)
    acc_backoff = hit_rates(backoff.rank_split(codes, tiny.words, 1, start), test, (1,))[1]
    assert acc_backoff < acc["codes"] < acc["words"] < acc["words+cache"]


def test_the_cache_learns_a_confirmed_new_word(kn):
    assert kn.candidates("qx", ["hello"], 3) == []  # no word starts with qx
    got = kn.candidates("qx", ["the", "qxyzzy", "said", "the"], 3)
    assert [w for w, _ in got] == ["qxyzzy"]
    assert kn.with_config(context="words").candidates("qx", ["qxyzzy"], 3) == []
    assert word_code(kn.candidates("th", ["qxyzzy"] * 3, 1)[0][0]) == "th"


def test_kn_save_load_round_trip(kn, tmp_path):
    ngram.save(kn, tmp_path / "m", {"dataset": "tiny"})
    back = ngram.load(tmp_path / "m")
    assert back.config == kn.config
    ctx = "my lord i will".split()
    assert back.candidates("th", ctx, 5) == kn.candidates("th", ctx, 5)
    ngram.save(kn, tmp_path / "m", {"dataset": "tiny again"})  # overwriting keeps a loadable model
    assert ngram.load(tmp_path / "m").candidates("th", ctx, 5) == kn.candidates("th", ctx, 5)


def test_bad_settings_and_missing_models(kn, tmp_path):
    with pytest.raises(UserError):
        kn.with_config(code_order=99)
    with pytest.raises(UserError):
        kn.with_config(context="telepathy")
    with pytest.raises(UserError):
        ngram.load(tmp_path / "nothing")
    with pytest.raises(UserError):
        ngram.train("trigram", ["a"] * 30, Vocab.build(["a"]))


def test_reproduces_the_published_backoff_table(data_dir):
    """The study's table on `shakespeare`, whole-file vocabulary, within 0.003 (train / test)."""
    published = {1: (.472, .473), 2: (.549, .522), 3: (.765, .505), 4: (.965, .499), 5: (.997, .499),
                 6: (1.000, .499)}
    corpus = load_corpus("shakespeare", data_dir)
    full = ngram.Backoff.train(corpus.train, Vocab.build(corpus.words), 6)
    codes, nt = [word_code(w) for w in corpus.words], corpus.n_train
    truth = full.vocab.encode(corpus.words)
    for n, (train, test) in published.items():
        m = full.truncated(n)
        got_train = np.mean(m.top1_ids(codes[:nt]) == truth[:nt])
        got_test = np.mean(m.top1_ids(codes, nt) == truth[nt:])
        assert abs(got_train - train) <= 0.003 and abs(got_test - test) <= 0.003, (n, got_train, got_test)


@pytest.mark.parametrize("bad", ["x", "abc", "1a", "Th", ""])
def test_a_string_that_is_not_a_code_is_refused_by_every_model(kn, tiny, tmp_path, bad):
    """One behaviour for a bad code, in every model and every combination: a UserError naming it (an empty
    list would mean "no known word", which "xq" gets)."""
    from jax_llm.ime.apps.userdict import UserDict
    from jax_llm.ime.combine import Ensemble, WithCache, WithUserWords

    backoff = ngram.Backoff.train(tiny.train, kn.vocab, 3)
    user = UserDict(tmp_path / "d.json")
    user.learn("xyzzy")
    for model in (backoff, kn, WithCache(kn), Ensemble(kn, backoff), WithUserWords(kn, user)):
        assert model.candidates("xq", ["the"], 3) == []  # a code no word has
        with pytest.raises(UserError, match=f"not a code: {bad!r}"):
            model.candidates(bad, ["the"], 3)
