import pytest

from jax_llm.errors import UserError
from jax_llm.ime.language.codes import CODES, NUM_CODES, code_id, normalize, parse_codes, word_code
from jax_llm.ime.predictor import Predictor, placeholder
from jax_llm.ime.predictor import convert_codes as convert


def test_normalize_follows_the_study():
    assert normalize("First-Two CHARACTER's input, method 2x!") == ["first", "two", "character", "s", "input", "method", "x"]
    assert normalize("") == []


def test_word_code_and_ids():
    assert [word_code(w) for w in ["first", "i", "to"]] == ["fi", "i ", "to"]
    assert NUM_CODES == 702 == len(set(CODES))
    assert [code_id(c) for c in ("a ", "z ", "aa", "zz")] == [0, 25, 26, 701]
    with pytest.raises(UserError):
        code_id("A1")


def test_parse_codes():
    assert parse_codes("fitwchinme") == ["fi", "tw", "ch", "in", "me"]
    assert parse_codes("fi tw  ch") == ["fi", "tw", "ch"]
    assert parse_codes("i am a ma") == ["i ", "am", "a ", "ma"]
    assert parse_codes("abc") == ["ab", "c "]  # an odd run ends in a one-letter code


@pytest.mark.parametrize("bad", ["Fitw", "fi2tw", "fi,tw", "fi\ttw", "", "   "])
def test_parse_codes_rejects_bad_input(bad):
    with pytest.raises(UserError) as e:
        parse_codes(bad)
    assert "\n" not in str(e.value)


class Table(Predictor):
    """A fake model: fixed candidates per code; records the contexts it was given."""

    def __init__(self, table):
        self.table, self.seen = table, []

    def candidates(self, code, context, k=10, ahead=()):
        self.seen.append(list(context))
        return self.table.get(code, [])[:k]


def test_convert_is_online_and_marks_unknown_codes():
    m = Table({"fi": [("first", -1.0), ("five", -2.0)], "tw": [("two", -0.5)]})
    assert isinstance(m, Predictor)
    steps = convert("fi xq tw", m, k=2)
    assert [s.word for s in steps] == ["first", placeholder("xq"), "two"]
    assert steps[0].candidates == [("first", -1.0), ("five", -2.0)]
    assert not steps[1].known and placeholder("xq") == "[xq?]"
    assert m.seen == [[], ["first"], ["first", "xq"]]
    m.seen.clear()
    convert(["fi", "tw", "fi"], m, confirmed=["five", "two"])
    assert m.seen == [[], ["five"], ["five", "two"]]
    with pytest.raises(UserError):
        convert("fi", m, k=0)
