"""The typing language (composer.py) key by key, with a fake model: capitals, punctuation and its spacing,
digits, paging, spelling in full, undo, what is learnt and taken back, and a lookahead model's revisions."""

import re

import pytest

from jax_llm.errors import UserError
from jax_llm.ime.apps.composer import Composer, check_keys, compose
from jax_llm.ime.predictor import Predictor
from jax_llm.ime.language.keys import PAGE_SIZE, pick_keys, spell_keys, word_keys

NAMES = [f"th{a}{b}" for a in "ab" for b in "abcdefghijklmnopqrstuvwxyz"][:30]  # thaa, thab, ..., thbd
TH = [("the", -0.5)] + [(w, -3.0 - i / 100) for i, w in enumerate(NAMES)]  # 31 candidates: 4 pages


class Table(Predictor):
    """A fake model: fixed candidates per code; records each context it was given."""

    def __init__(self):
        self.table = {"ca": [("call", -0.1)], "me": [("me", -0.1), ("mean", -1.0)], "is": [("is", -0.1), ("isle", -2.0)],
                      "i ": [("i", -0.1)], "so": [("some", -0.2)], "th": TH, "a ": [("a", -0.1)]}
        self.contexts = []

    def candidates(self, code, context, k=10, ahead=()):
        self.contexts.append(list(context))
        return self.table.get(code, [])[:k]


class Learner:
    def __init__(self):
        self.counts = {}

    def learn(self, word):
        self.counts[word] = self.counts.get(word, 0) + 1
        return True

    def unlearn(self, word):
        self.counts[word] -= 1
        if not self.counts[word]:
            del self.counts[word]


def typed(keys: str, learner=None) -> Composer:
    c = Composer(Table(), learner)
    for ch in keys:
        assert c.key(ch) is None, ch
    return c


@pytest.mark.parametrize("keys, text", [
    ("Ca me /Ishmael. So", "Call me Ishmael. Some"),  # capitals; spelled word keeps its case; no space before .
    ("CAme", "CALL me"),  # two capitals: the word in capitals
    ('so - "th" (th), i  1851!', 'some - "the" (the), i 1851!'),  # dash spaced, quotes and brackets attach;
    # (after "i " its candidates are shown, so a digit would pick: space accepts first)
    ("th: th; th? I'th'", "the: the; the? I 'the'"),  # ' is a quote: odd ones open
    ("I.", "I."),  # punctuation ends a lone letter as a one-letter word
    ("/don't /Moby-Dick,", "don't Moby-Dick,"),  # ' and - inside a spelled word
    ("/café ca", "café call"),  # any letter may be spelled
    ("th2th>1th>>>>3", "thaa thai thab"),  # pick on a page; > after the last page comes back to the first
    ("ca 2", "call 2"),  # a digit with no candidates shown passes through
    ("xq,", "[xq?],"),  # a code with no known word keeps its placeholder
    ("ca\n\nme", "call\nme"),  # Enter accepts; Enter on nothing: a new line
])
def test_keys_give_the_text(keys, text):
    c = compose(keys, Table())
    assert c.text() == text


def test_the_model_sees_lowercase_words_only():
    c = typed('Ca, "me" /Ishmael\'s 42 so')  # (not `compose`: its end converts the phrase, asking again)
    assert c.predictor.contexts[-1] == ["call", "me", "ishmael", "s"]  # normalised as the corpus is; no marks, no digits


def test_paging_shows_nine_at_a_time_and_asks_for_more_only_when_needed():
    c = typed("th")
    assert len(c.candidates) == PAGE_SIZE + 1 and c.pages()  # one more than a page: there is a next one
    assert [w for w, _ in c.shown()] == ["the"] + NAMES[:8]
    for page in (1, 2, 3, 0):
        assert c.key(">") is None and c.page == page
    assert c.key(">") is None and [w for w, _ in c.shown()][0] == "thai"
    assert c.prediction == "the"  # typing on still accepts the top word
    c = typed("ca")
    assert not c.pages() and "all the candidates" in c.key(">")


@pytest.mark.parametrize("keys, says", [
    ("f5", "type a second letter"), ("th0", "digit 0 picks nothing"), ("me3", "digit 3 picks nothing"),
    ("f>", "full code first"), ("@", "not a key here"), ("/ab#", "not part of a word"), ("\x7f", "nothing to undo"),
])
def test_keys_that_do_nothing_say_why(keys, says):
    c = Composer(Table())
    *ok, last = keys
    for ch in ok:
        assert c.key(ch) is None
    before = (c.text(), c.typed, c.spelling)
    assert says in c.key(last)
    assert (c.text(), c.typed, c.spelling) == before


def test_spelled_and_picked_words_are_learnt_and_undo_takes_them_back():
    learner = Learner()
    c = typed("/Ishmael me2 th th3 Ca", learner)  # spelled, picked (not top), top, picked, top
    assert learner.counts == {"ishmael": 1, "mean": 1, "thab": 1}
    for _ in range(3):  # "Ca" (two letters), then "thab" comes back as its code with its candidates
        assert c.key("\x7f") is None
    assert c.typed == "th" and c.candidates and learner.counts == {"ishmael": 1, "mean": 1}
    for _ in range(8):  # th's letters, "the" (back to "th"), its letters, "mean" (back to "me"), its letters
        c.key("\x7f")
    assert learner.counts == {"ishmael": 1} and c.text() == "Ishmael"
    c.key("\x7f")  # a spelled word comes back to be spelled
    assert c.spelling == "Ishmael" and learner.counts == {} and c.text() == ""
    for ch in "\x7f" * 7 + "\x7f":  # erase its letters, then leave spelling
        c.key(ch)
    assert c.spelling is None and "nothing to undo" in c.key("\x7f")
    typed("/42 /co-op /Ishmael's", learner)
    assert learner.counts == {}  # only a word of letters a-z is learnt


class Ahead(Table):
    """A fake lookahead-2 model: `th` ranks first "the" online, "this" with one code after it, "that" with two
    (and "thou" with three, which a lookahead-2 input method never sends)."""

    lookahead = 2
    ORDER = ("the", "this", "that", "thou")

    def candidates(self, code, context, k=10, ahead=()):
        if code != "th":
            return super().candidates(code, context, k)
        self.contexts.append(list(context))
        top = self.ORDER[len(ahead)]
        return [(top, -0.1)] + [(w, -1.0 - i) for i, w in enumerate(self.ORDER) if w != top][:k - 1]


@pytest.mark.parametrize("keys, text", [
    ("th th th th", "that that this the"),  # each word revised while the next two codes arrive, no further
    ("Th th, th th", "This the, this the"),  # the case is kept; a mark ends the run: "the," stays
    ("th th1 th th", "this the this the"),  # a word picked with a digit (even the top one) ends the run, unrevised
    ("/the th th", "the this the"),  # a spelled word is never revised
    ("thth\n\nth", "this the\nthe"),  # nor a word on a line before (Enter accepts, then starts a line)
    ("th th\x7f\x7f", "this"),  # Backspace over the new code leaves the revision standing
    ("th th\x7f\x7f\x7f", "the"),  # the word itself comes back as its code, ranked online again
])
def test_a_lookahead_model_revises_the_words_accepted_by_typing_on(keys, text):
    c = Composer(Ahead())  # key by key, without `compose`'s conversion at the end (test_ime_phrase_conversion.py)
    for ch in keys:
        assert c.key(ch) is None, ch
    c.finish()
    assert c.text() == text


def test_a_revision_is_reported_until_the_next_key_and_ranks_the_new_code_after_it():
    m = Ahead()
    c = Composer(m)
    for ch in "Th t":
        assert c.key(ch) is None and c.revised == []
    assert c.key("h") is None and c.revised == [("The", "This")] and c.text() == "This"
    assert m.contexts[-1] == ["this"]  # the new code is ranked after the revised word
    assert c.key(" ") is None and c.revised == []
    for ch in "th":
        c.key(ch)
    assert c.revised == [("This", "That"), ("the", "this")]  # oldest first
    assert m.contexts[-3:] == [[], ["that"], ["that", "this"]]  # each ranked after the words before it, revised


def test_check_keys_refuses_before_any_model():
    for bad, says in [("fi~tw", "invalid character '~'"), ("a@b", "invalid character '@'"), ("  ", "no codes")]:
        with pytest.raises(UserError, match=re.escape(says)):
            check_keys(bad)
    with pytest.raises(UserError, match="position 3 of 'th0'"):
        compose("th0", Table())


def test_key_costs():
    assert [pick_keys(r) for r in (1, 2, 9, 10, 18, 19)] == [0, 1, 1, 2, 2, 3]
    assert spell_keys("ishmael") == 9
    ranked = [w for w, _ in TH]
    assert word_keys("the", ranked) == (2, "pick") and word_keys("The", ranked) == (2, "pick")
    assert word_keys("thaj", ranked) == (4, "pick")  # rank 11: code, >, digit
    assert word_keys("thy", ranked) == (5, "spell")  # not shown: /thy and space
    assert word_keys("thbd", ranked) == (6, "pick")  # rank 31: 2 + 3 + 1, as cheap as spelling: picked
    assert word_keys("thy", ranked[:30] + ["thy"]) == (5, "spell")  # rank 31 costs 6: spelling is cheaper
    with pytest.raises(ValueError):
        pick_keys(0)
