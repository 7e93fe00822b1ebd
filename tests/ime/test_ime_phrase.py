"""Phrase conversion and the phrase protocol: the Transformer's batched beam search gives the words of the
generic one (`phrase.beam_search` over `candidates`), fixed words stay, and the protocol's figures follow
from the conversions."""

import numpy as np
import pytest

from jax_llm.errors import UserError
from jax_llm.ime import phrase
from jax_llm.ime.language.codes import word_code
from jax_llm.ime.language.words import load_corpus, phrase_ends
from jax_llm.ime.predictor import Predictor, load_predictor
from jax_llm.ime.study import phrases
from jax_llm.ime.transformer.predictor import TransformerPredictor


def test_phrases_end_at_the_texts_marks_and_line_ends():
    text = "First Citizen:\nBefore we proceed, hear me speak. (Aside) don't - go\n\nAll!"
    # first citizen | before we proceed | hear me speak | aside don t go | all
    assert phrase_ends(text).tolist() == [False, True, False, False, True, False, False, True,
                                          False, False, False, True, True]
    assert phrases.spans(phrase_ends(text), 3, 13) == [(3, 5), (5, 8), (8, 12), (12, 13)]


@pytest.fixture(scope="module")
def text_words(ime_ui_model):
    corpus = load_corpus(str(ime_ui_model.parent / "corpus.txt"))
    return corpus.words[corpus.n_train:]


@pytest.mark.parametrize("model,seen", [("ime_lookahead_model", 0), ("ime_lookahead_model", 1),
                                        ("ime_transformer_model", None)])
@pytest.mark.parametrize("beam", [1, 4])
def test_the_batched_beam_search_gives_the_generic_ones_words(request, model, text_words, beam, seen):
    """Contexts shorter than half a block, so that both read every word before the phrase; a lookahead-1
    model read with 0 and 1 later codes, and an online one."""
    p = TransformerPredictor(request.getfixturevalue(model), seen=seen)
    half = p.cfg.model.block_size // 2
    cases = []
    for at in range(0, 300, 7):
        context, words = text_words[at: at + at % half], text_words[at + at % half: at + at % half + 1 + at % 6]
        codes = [word_code(w) for w in words]
        fixed = {1: words[1]} if at % 3 == 0 and len(words) > 2 else {}
        cases.append((context, codes, fixed))
    batched = p.convert_phrases(cases, beam)
    generic = [phrase.beam_search(p, codes, context, fixed, beam) for context, codes, fixed in cases]
    assert batched == generic
    assert all(out[j] == w for (_, _, fixed), out in zip(cases, batched) for j, w in fixed.items())
    assert p.convert_phrase(cases[3][1], cases[3][0], cases[3][2], beam) == batched[3]


@pytest.mark.parametrize("model", ["ime_lookahead_model", "ime_transformer_model"])
def test_the_own_cache_inside_the_batched_beam_gives_the_generic_ones_words(request, model, text_words):
    """The own cache's mix inside the Transformer's batched beam (`phrase.Rerank`) equals the generic beam
    search over `WithCache.candidates`, whose contexts hold each hypothesis's words."""
    from jax_llm.ime.combine import WithCache

    p = TransformerPredictor(request.getfixturevalue(model))
    half = p.cfg.model.block_size // 2
    cases = []
    for at in range(0, 400, 9):
        context, words = text_words[at: at + half - 1], text_words[at + half - 1: at + half + 2 + at % 7]
        fixed = {2: words[2]} if at % 4 == 0 and len(words) > 3 else {}
        cases.append((context, [word_code(w) for w in words], fixed))
    batched = WithCache(p, code=0.3, follow=0.2, decay=20).convert_phrases(cases, 4)
    generic = [phrase.beam_search(WithCache(p, 0.3, 0.2, 20), codes, context, fixed, 4)
               for context, codes, fixed in cases]
    assert batched == generic
    assert batched != p.convert_phrases(cases, 4)  # the caches changed some words


def test_beam_one_is_greedy_and_a_wider_beam_scores_at_least_as_well(ime_lookahead_model, text_words):
    p = TransformerPredictor(ime_lookahead_model)
    codes, context = [word_code(w) for w in text_words[40:52]], text_words[30:40]
    greedy, ctx = [], list(context)
    for j, code in enumerate(codes):
        greedy.append(p.candidates(code, ctx, 1, codes[j + 1:])[0][0])
        ctx.append(greedy[-1])
    assert p.convert_phrase(codes, context, beam=1) == greedy

    def total(words):
        return sum(dict(p.candidates(c, [*context, *words[:j]], 10_000, codes[j + 1:]))[w]
                   for j, (c, w) in enumerate(zip(codes, words)))

    assert total(p.convert_phrase(codes, context, beam=8)) >= total(greedy) - 1e-4


def test_long_phrases_are_converted_in_pieces(ime_lookahead_model, text_words):
    p = TransformerPredictor(ime_lookahead_model)
    codes = [word_code(w) for w in text_words[100:150]]  # 50 codes: more than a block of 16
    out = p.convert_phrase(codes, text_words[:100])
    assert len(out) == 50 and [word_code(w) for w in out if not w.startswith("[")] == \
        [c for c, w in zip(codes, out) if not w.startswith("[")]
    with pytest.raises(UserError, match="not a code"):
        p.convert_phrase(["th", "x1"], [])


def test_the_phrase_protocol_counts_words_phrases_and_keys(ime_ui_model, text_words):
    class Copycat(Predictor):
        """Right on every word whose code starts with a vowel, wrong (second) on the others."""
        def candidates(self, code, context, k=10, ahead=()):
            return [(code + "x", -1.0), (code + "y", -2.0)][:k]

    model = load_predictor(ime_ui_model)
    words = ["the", "cat", "sat", "on", "a", "mat"]
    ends = np.array([False, True, False, False, False, True])
    row = phrases.score_phrases(Copycat(), words, ends, 0, "fake", 2)
    assert (row.phrases, row.words, row.word_acc, row.exact) == (2, 6, 0.0, 0.0)
    # every word wrong and not among the candidates: its code, then spelled
    assert row.keys_saved == pytest.approx(1 - sum(2 + len(w) + 2 for w in words) / sum(len(w) + 1 for w in words))
    third_page = ["c" + str(i) for i in range(20)] + ["cat"]
    assert [phrases.fix_keys("cat", r) for r in (["cat"], ["cab", "cat"], third_page)] == [1, 1, 3]  # spelling: 5
    row = phrases.score_phrases(model, text_words[:200], phrase_ends(" ".join(text_words[:200])), 20, "kn", 1)
    assert row.words == 180 and row.phrases == 1 and 0 < row.word_acc <= 1


def test_the_user_words_wrapper_uses_the_models_own_conversion_unless_the_writer_taught_a_phrase_code(tmp_path):
    from jax_llm.ime.apps.userdict import UserDict
    from jax_llm.ime.combine import WithUserWords

    class Own(Predictor):
        def candidates(self, code, context, k=10, ahead=()):
            return [(code + "a", -0.5), (code + "b", -1.0)][:k]

        def convert_phrase(self, codes, context, fixed={}, beam=None):
            return [c + "b" for c in codes]  # differs from the beam search over `candidates`

    user = UserDict(tmp_path / "words.txt")
    wrapped = WithUserWords(Own(), user)
    assert wrapped.convert_phrase(["th", "ca"], []) == ["thb", "cab"]
    user.learn("cattle")
    assert wrapped.convert_phrase(["th", "ca"], []) == ["tha", "caa"]  # the beam search over its candidates
