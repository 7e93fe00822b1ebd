"""Revisions with real models: a Transformer trained with `--lookahead 1` replaces the word before each new
code exactly when its ranking with that code differs from the online one (`revision_case`, found in real
text); a word picked with a digit, spelled, or before a mark is never revised (a mark that ends a phrase
converts it instead); a `kn` model never revises."""

from jax_llm.ime.apps.composer import Composer
from jax_llm.ime.predictor import convert_codes


def type_codes(composer: Composer, codes: list[str]) -> list[list[tuple[str, str]]]:
    """Each code typed key by key; what the composer reported revised at each code's last key (and
    nothing at any other key)."""
    reported = []
    for code in codes:
        for ch in code[:-1]:
            assert composer.key(ch) is None and composer.revised == [], code
        assert composer.key(code[-1]) is None
        reported.append(composer.revised)
    return reported


def test_the_word_before_is_revised_exactly_when_the_next_code_changes_its_ranking(ime_lookahead_predictor,
                                                                                   revision_case):
    case = revision_case
    c = Composer(ime_lookahead_predictor)
    reported = type_codes(c, case.codes)
    revised_at = {i: [(old, new)] for i, old, new in case.revisions}
    assert reported == [revised_at.get(i, []) for i in range(len(case.codes))]
    assert any(reported) and not all(reported[1:])  # both happen in this text
    c.finish()
    assert c.text() == " ".join(case.words) != " ".join(case.shown)
    i = case.revisions[0][0]  # the revised word keeps the revised ranking (what /api/convert's steps show)
    assert c.tokens[i - 1].candidates == ime_lookahead_predictor.candidates(case.codes[i - 1], case.words[:i - 1], c.k,
                                                                             ahead=[case.codes[i]])


def test_a_picked_spelled_or_marked_word_is_never_revised(ime_lookahead_predictor, revision_case):
    i, old, _ = revision_case.revisions[0]  # the first: typing code i revises word i-1 from `old`
    before, code = revision_case.codes[:i - 1], revision_case.codes[i]
    second = ime_lookahead_predictor.candidates(revision_case.codes[i - 1], revision_case.words[:i - 1], 2)[1][0]
    joint = ime_lookahead_predictor.convert_phrase(revision_case.codes[:i], [])[-1]
    for keys, kept in [(revision_case.codes[i - 1] + "1", old),  # picked with a digit, even the top word
                       (revision_case.codes[i - 1] + "2", second),
                       (f"/{old} ", old),  # spelled
                       (revision_case.codes[i - 1] + ",", joint)]:  # a mark between it and the new code: the
        # mark ends the phrase, which is converted together and closed
        c = Composer(ime_lookahead_predictor)
        type_codes(c, [*before, keys])
        assert type_codes(c, [code]) == [[]], keys
        assert [t.text for t in c.tokens if t.kind != "mark"][-1] == kept


def test_a_model_without_lookahead_never_revises(ime_predictor, revision_case):
    c = Composer(ime_predictor)
    assert type_codes(c, revision_case.codes) == [[]] * len(revision_case.codes)
    c.finish()
    assert c.text() == " ".join(s.word for s in convert_codes(revision_case.codes, ime_predictor))
