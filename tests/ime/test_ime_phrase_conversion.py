"""Phrase conversion in the typing apps: at the end of a phrase (. , ; : ! ?, Enter, Tab, the end of `ime
convert`'s input) the composer converts the phrase's words again together (`Predictor.convert_phrase`), with
a fake model whose joint decoding differs from the words shown online: "re bo" shows "red box" as typed,
and "read book" together. Also the positions a phrase maps to, what stays, undo, the terminal, the CLI,
and POST /api/phrase. (The page does the same keys: typing_cases.json, test_ime_typing_language.py.)"""

import http.client
import io
import json
import os
import socket
import threading

import pytest
from test_ime_compose import Ahead

from jax_llm.cli import build_parser
from jax_llm.ime.apps import guard, phrasing, serve, terminal
from jax_llm.ime.apps.composer import Composer, compose
from jax_llm.ime.language import keys
from jax_llm.ime.predictor import Predictor

RED_BOX = [("red", "read"), ("box", "book")]
TABLE = {"re": [("red", -1.0), ("read", -1.2)], "bo": [("book", -3.0), ("box", -4.0)], "i ": [("i", -1.0)]}
AFTER = {("red", "bo"): [("box", -4.0)], ("read", "bo"): [("book", -1.0)]}  # (previous word, code): its words


class Joint(Predictor):
    """Online, "re" ranks red first, then "bo" after red gives box; together, read book scores better (a
    beam of the default `convert_phrase`). Records each phrase it was asked to convert."""

    def __init__(self):
        self.phrases = []

    def candidates(self, code, context, k=10, ahead=()):
        return AFTER.get((context[-1] if context else "", code), TABLE.get(code, []))[:k]

    def convert_phrase(self, codes, context, fixed=None, beam=None):
        self.phrases.append((list(codes), list(context), dict(fixed or {})))
        return super().convert_phrase(codes, context, fixed or {}, beam)


def typed(keys_: str, model=None) -> Composer:
    c = Composer(model or Joint())
    for ch in keys_:
        assert c.key(ch) is None, ch
    return c


@pytest.mark.parametrize("end", [*keys.PHRASE_END, "\n", "\t"])
def test_each_end_of_a_phrase_converts_its_words_together(end):
    c = typed("rebo")
    assert c.text() == "red" and c.prediction == "box"  # online
    assert c.key(end) is None
    assert c.revised == RED_BOX and c.predictor.phrases == [(["re", "bo"], [], {})]
    assert c.text() == "read book" + (end if end in keys.PHRASE_END else "")  # the mark after, spaced as ever


def test_enter_on_nothing_converts_then_starts_a_line_and_a_closed_phrase_is_left_alone():
    c = typed("re bo \n")
    assert c.text() == "read book\n" and c.revised == RED_BOX
    c = typed("re\tbo.")  # Tab closed "red": the mark converts "bo" alone, after it
    assert c.text() == "red box." and c.predictor.phrases == [(["re"], [], {}), (["bo"], ["red"], {})]
    c = typed("rebo.\n")  # nothing open: no conversion
    assert len(c.predictor.phrases) == 1 and c.text() == "read book.\n"


def test_the_case_is_kept_and_revised_is_reported_until_the_next_key():
    c = typed("REbo!")
    assert c.text() == "READ book!" and c.revised == [("RED", "READ"), ("box", "book")]
    assert c.key(" ") is None and c.revised == []
    c = typed("Rebo\t")
    assert c.text() == "Read book"
    line2 = terminal.render(c, 120)[1]
    assert line2.startswith("revised Red -> Read, box -> book | ")  # as the terminal shows a revision


def test_picked_and_spelled_words_stay_and_are_positions_of_their_own():
    c = typed("re. re1 /Ishmael's bo 42 (re) - bo.")
    codes, context, fixed = c.predictor.phrases[-1]
    # the picked "red" and each model word of the spelled word are fixed; marks and digits are no position
    assert codes == ["re", "is", "s ", "bo", "re", "bo"] and context == ["red"]
    assert fixed == {0: "red", 1: "ishmael", 2: "s"}
    assert c.text() == "red. red Ishmael's book 42 (read) - book."  # online: "... (red) - box."
    assert c.revised == RED_BOX
    c = typed("/Red bo.")
    assert c.text() == "Red box." and c.revised == [] and c.predictor.phrases == [(["re", "bo"], [], {0: "red"})]


def test_nothing_to_convert_is_no_call_and_no_refusal():
    c = typed("\t\t")
    assert c.text() == "" and c.predictor.phrases == []
    c = typed("re2bo1.\t")  # every word picked: nothing the conversion could change
    assert c.text() == "read book." and c.predictor.phrases == []
    c = typed("/abc\t")  # Tab ends a spelled word too
    assert c.text() == "abc" and c.spelling is None


def test_backspace_after_a_conversion():
    c = typed("rebo.\x7f")  # the mark goes; the converted words stay, closed
    assert c.text() == "read book" and all(t.closed for t in c.tokens)
    for ch in "re.":
        c.key(ch)
    assert c.predictor.phrases[-1] == (["re"], ["read", "book"], {}) and c.text() == "read book red."
    c = typed("rebo.\x7f\x7f")  # a converted word taken back comes back as its code, ranked online
    assert c.typed == "bo" and c.prediction == "book" and c.text() == "read"
    c.key("\t")
    assert c.predictor.phrases[-1] == (["bo"], ["read"], {})  # typed again: a phrase of its own


def test_a_closed_phrase_is_not_revised_by_a_lookahead_model():
    c = typed("th\tth", Ahead())  # "the" alone: closed by Tab, so the next code does not revise it
    assert c.revised == [] and c.text() == "the"
    c = typed("th th", Ahead())  # without Tab it would be
    assert c.revised == [("the", "this")]


def test_a_long_phrase_converts_its_last_words(monkeypatch):
    monkeypatch.setattr(phrasing, "PHRASE_WORDS", 3)
    c = typed("re re re re re.")
    assert c.predictor.phrases == [(["re"] * 3, ["red", "red"], {})]


def test_convert_and_the_pipe_end_a_phrase_at_the_end_of_the_input(monkeypatch, capsys):
    assert compose("rebo", Joint()).text() == "read book"
    monkeypatch.setattr("jax_llm.ime.predictor.load_predictor", lambda name: Joint())
    args = build_parser().parse_args(["ime", "convert", "Rebo"])
    assert args.func(args) == 0 and capsys.readouterr().out == "Read book\n"
    out = io.StringIO()
    terminal.run_pipe(Composer(Joint()), io.BytesIO(b"rebo\nre\tbo\n"), out)
    assert out.getvalue() == "read book\nred box\n"


def test_the_terminal_keeps_the_line_as_converted(monkeypatch):
    import tty

    master, slave = os.openpty()
    try:
        tty.setraw(slave)  # here, before the keys are sent (run_terminal's own would discard them)
        monkeypatch.setattr(tty, "setraw", lambda fd, when=None: None)
        os.write(master, b"Rebo \r\x04")  # Enter on nothing: the line is converted, then printed above
        out = io.StringIO()
        terminal.run_terminal(Composer(Joint()), slave, out)
    finally:
        os.close(master)
        os.close(slave)
    assert "\r\x1b[J> Read book\r\n" in out.getvalue() and "Red box" not in out.getvalue()


# --- POST /api/phrase -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phrase_server():
    """`create_app` around the fake, behind the guard, as `ime serve` runs it; in this process."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app = guard.Guard(serve.create_app(Joint(), "joint"), guard.allowed_hosts("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    yield port
    server.should_exit = True


def call(port, body, method="POST", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        c.request(method, "/api/phrase", body=data, headers=headers or {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def test_api_phrase_converts_a_phrase(phrase_server):
    assert call(phrase_server, {"codes": ["re", "bo"]}) == (200, {"words": ["read", "book"]})
    assert call(phrase_server, {"codes": ["re", "bo"], "fixed": {"0": "red"}}) == (200, {"words": ["red", "box"]})
    assert call(phrase_server, {"codes": ["bo", "i", "i "], "context": ["red"]}) == (200, {"words": ["box", "i", "i"]})
    assert call(phrase_server, {"codes": ["xq"]}) == (200, {"words": ["[xq?]"]})  # a code no word has
    assert call(phrase_server, {"codes": [], "context": ["red"]}) == (200, {"words": []})


@pytest.mark.parametrize("body, status, says", [
    (b"{", 400, "not valid JSON"),
    (b'["re"]', 400, "JSON object"),
    ({}, 422, "'codes' must be a list"),
    ({"codes": "rebo"}, 422, "'codes' must be a list"),
    ({"codes": ["reb"]}, 422, "'codes'[0] must be one or two letters"),
    ({"codes": ["re", "B1"]}, 422, "'codes'[1] must be lowercase letters"),
    ({"codes": ["re"] * (keys.PHRASE_WORDS + 1)}, 422, f"at most {keys.PHRASE_WORDS}"),
    ({"codes": ["re"], "context": "red"}, 422, "'context' must be a list"),
    ({"codes": ["re"], "context": ["Red"]}, 422, "'context'[0] must be lowercase letters"),
    ({"codes": ["re"], "context": ["r" * 65]}, 422, "at most 64"),
    ({"codes": ["re"], "fixed": ["red"]}, 422, "'fixed' must be an object"),
    ({"codes": ["re"], "fixed": {"1": "red"}}, 422, "no position of the 1 codes"),
    ({"codes": ["re"], "fixed": {"-0": "red"}}, 422, "no position"),
    ({"codes": ["re"], "fixed": {"0": 5}}, 422, "must be a string"),
    ({"codes": ["re"], "fixed": {"0": "Red\nx"}}, 422, "must be lowercase letters"),
    ({"codes": ["re"], "fixed": {"0": "book"}}, 422, "whose code is not 're'"),
])
def test_api_phrase_refuses_bad_input_in_one_line(phrase_server, body, status, says):
    got, data = call(phrase_server, body)
    assert got == status and list(data) == ["error"] and says in data["error"] and "\n" not in data["error"]


def test_api_phrase_is_guarded_and_announced(phrase_server):
    assert call(phrase_server, None, "GET")[0] == 405
    assert call(phrase_server, {"codes": ["re"]}, headers={"Content-Type": "text/plain"})[0] == 415
    evil = {"Content-Type": "application/json", "Origin": "http://evil.example"}
    assert call(phrase_server, {"codes": ["re"]}, headers=evil)[0] == 403
    c = http.client.HTTPConnection("127.0.0.1", phrase_server, timeout=30)
    c.request("GET", "/api/info")
    info = json.loads(c.getresponse().read())
    c.close()
    assert info["limits"]["phrase"] == keys.PHRASE_WORDS
    assert {k: info["keys"][k] for k in ("PHRASE_END", "CONVERT", "PHRASE_WORDS")} == {
        "PHRASE_END": keys.PHRASE_END, "CONVERT": keys.CONVERT, "PHRASE_WORDS": keys.PHRASE_WORDS}
