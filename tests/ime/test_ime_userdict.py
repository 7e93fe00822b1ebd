"""The user dictionary: its file (atomic, shared by two sessions, a damaged one refused and left alone),
`jax-llm ime dict`, and how its words rank beside a model's (`combine.WithUserWords`)."""

import json
import math
import subprocess
import sys

import pytest

from helpers import JAX_LLM
from jax_llm.errors import UserError
from jax_llm.ime.apps.userdict import UserDict, default_path
from jax_llm.ime.predictor import Predictor
from jax_llm.ime.combine import PRIOR, WithUserWords

IME = [*JAX_LLM, "ime"]


def test_learn_unlearn_forget_and_the_file(tmp_path):
    path = tmp_path / "sub" / "dict.json"
    d = UserDict(path)
    assert d.words == {} and not path.exists()  # nothing written until something is learnt
    assert d.learn("ishmael") and d.learn("ishmael") and d.learn("isle")
    assert not d.learn("Ishmael") and not d.learn("co-op") and not d.learn("")  # lowercase a-z words only
    assert json.loads(path.read_text()) == {"format": 1, "words": {"ishmael": 2, "isle": 1}}
    assert d.by_code("is") == {"ishmael": 2, "isle": 1} and d.by_code("ca") == {}
    d.unlearn("ishmael")
    d.unlearn("isle")
    assert UserDict(path).words == {"ishmael": 1}
    with pytest.raises(UserError, match="not in .*: queequeg .nothing was changed"):
        d.forget(["ishmael", "queequeg"])
    assert UserDict(path).words == {"ishmael": 1}
    d.forget(["ishmael"])
    assert UserDict(path).words == {}
    assert sorted(p.name for p in path.parent.iterdir()) == ["dict.json", "dict.json.lock"]  # no temporary left


def test_no_learn_reads_but_never_writes(tmp_path):
    path = tmp_path / "d.json"
    UserDict(path).learn("ishmael")
    before = path.read_bytes()
    d = UserDict(path, learning=False)
    assert d.words == {"ishmael": 1}
    assert not d.learn("isle")
    d.unlearn("ishmael")
    assert path.read_bytes() == before


def test_default_path_follows_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "jax-llm" / "user-dict.json"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert str(default_path()).endswith(".local/share/jax-llm/user-dict.json")


LEARNER = """
import sys
from jax_llm.ime.apps.userdict import UserDict
d = UserDict(sys.argv[1])
for i in range(40):
    d.learn("shared")
    d.learn("only" + sys.argv[2] + "abcdefghijklmnopqrstuvwxyz"[i % 26])
"""


def test_two_sessions_at_once_lose_nothing(tmp_path):
    path = tmp_path / "d.json"
    UserDict(path).learn("before")
    procs = [subprocess.Popen([sys.executable, "-c", LEARNER, str(path), tag]) for tag in ("x", "y")]
    assert [p.wait(120) for p in procs] == [0, 0]
    words = UserDict(path).words
    assert words["before"] == 1 and words["shared"] == 80
    for tag in "xy":
        assert sum(c for w, c in words.items() if w.startswith("only" + tag)) == 40


@pytest.mark.parametrize("content, says", [
    (b"{not json", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "not a user dictionary"),
    (b'{"format": 2, "words": {}}', "not a user dictionary"),
    (b'{"format": 1, "words": {"Ishmael": 1}}', "bad entry 'Ishmael'"),
    (b'{"format": 1, "words": {"ishmael": 0}}', "bad entry 'ishmael'"),
    (b'{"format": 1, "words": {"ishmael": "1"}}', "bad entry 'ishmael'"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_a_damaged_dictionary_is_refused_in_one_line_and_left_alone(tmp_path, content, says):
    path = tmp_path / "d.json"
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        UserDict(path)
    assert str(path) in str(e.value) and says in str(e.value) and "\n" not in str(e.value)
    r = subprocess.run([*IME, "dict", "list", "--user-dict", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and says in r.stderr and r.stderr.count("\n") == 1
    assert path.read_bytes() == content


def test_a_dictionary_damaged_during_a_session_is_not_overwritten(tmp_path):
    path = tmp_path / "d.json"
    d = UserDict(path)
    d.learn("ishmael")
    path.write_bytes(b"{oops")
    with pytest.raises(UserError, match="not valid JSON"):
        d.learn("isle")
    assert path.read_bytes() == b"{oops"


def test_dict_list_and_forget_commands(tmp_path):
    path = tmp_path / "d.json"
    d = UserDict(path)
    for w in ["ishmael", "ishmael", "queequeg", "ahab", "ahab", "ahab"]:
        d.learn(w)
    run = lambda *a: subprocess.run([*IME, "dict", *a, "--user-dict", str(path)], capture_output=True,  # noqa: E731
                                    text=True, timeout=120)
    r = run("list")
    assert r.returncode == 0 and [line.split() for line in r.stdout.splitlines()] == [
        ["3", "ahab"], ["2", "ishmael"], ["1", "queequeg"]]
    r = run("forget", "Ahab", "queequeg")
    assert r.returncode == 0 and "forgot 2 words" in r.stdout
    assert UserDict(path).words == {"ishmael": 2}
    r = run("forget", "starbuck")
    assert r.returncode == 2 and "starbuck" in r.stderr and UserDict(path).words == {"ishmael": 2}
    r = run("list")
    assert r.returncode == 0 and r.stdout.split() == ["2", "ishmael"]


class Model(Predictor):
    """A fake model with log-probabilities over the code's words."""

    table = {"is": [("is", math.log(0.9)), ("isle", math.log(0.06)), ("island", math.log(0.04))]}

    def candidates(self, code, context, k=10, ahead=()):
        return self.table.get(code, [])[:k]


def test_user_words_rank_beside_the_models(tmp_path):
    d = UserDict(tmp_path / "d.json")
    ranked = WithUserWords(Model(), d)
    assert ranked.candidates("is", [], 2) == Model.table["is"][:2]  # nothing learnt: the model's own answer
    d.learn("ishmael")  # outside the model's words: the user-dictionary score, n / (N + PRIOR)
    got = dict(ranked.candidates("is", [], 10))
    assert got["ishmael"] == pytest.approx(math.log(1 / (1 + PRIOR)))
    u = 1 / (1 + PRIOR)
    assert got["is"] == pytest.approx(math.log((1 - u) * 0.9))
    assert [w for w, _ in ranked.candidates("is", [], 10)] == ["is", "ishmael", "isle", "island"]
    assert ranked.candidates("is", [], 2) == ranked.candidates("is", [], 10)[:2]  # pages agree
    for _ in range(3):
        d.learn("island")  # used often: it rises; u = 4 / 9
    assert [w for w, _ in ranked.candidates("is", [], 10)][:2] == ["is", "island"]
    for _ in range(10):
        d.learn("island")
    assert ranked.candidates("is", [], 1)[0][0] == "island"
    assert sum(math.exp(s) for _, s in ranked.candidates("is", [], 10)) == pytest.approx(1.0)
