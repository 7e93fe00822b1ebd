"""`jax-llm ime serve` over real HTTP: a started server process, the JSON API, every bad request, 50 clients."""

import http.client
import json
import subprocess
import threading
from pathlib import Path

import pytest

from helpers import JAX_LLM, PHRASE
from jax_llm.cli import build_parser
from jax_llm.ime.language import keys



def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            conn: http.client.HTTPConnection | None = None):
    """(status, parsed JSON or text, headers) for one request; a fresh connection unless one is given."""
    c = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        ctype = r.getheader("content-type", "")
        return r.status, json.loads(raw) if ctype.startswith("application/json") else raw.decode(), r
    finally:
        if conn is None:
            c.close()


def post(server, path: str, obj, conn=None):
    return request(server, "POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"}, conn)


def expected_predict(predictor, code, context, k):
    return [w for w, _ in predictor.candidates(code, context, k)]


def test_predict_answers_what_the_model_ranks(ime_server, ime_predictor):
    for code, context, k in [("fi", [], 5), ("tw", ["first"], 9), ("ch", ["first", "two"], 3),
                             ("th", ["i", "know"], 9), ("i ", ["and"], 2), ("me", PHRASE.split()[:4], 9)]:
        status, data, _ = post(ime_server, "/api/predict", {"code": code, "context": context, "k": k})
        assert status == 200, data
        assert data["code"] == code
        want = ime_predictor.candidates(code, context, k)
        assert [c["word"] for c in data["candidates"]] == [w for w, _ in want]
        assert [c["score"] for c in data["candidates"]] == pytest.approx([s for _, s in want])
        assert all(c["word"][:2] == code.strip() for c in data["candidates"])
    # a one-letter code may be sent as the letter alone; k and context are optional
    status, data, _ = post(ime_server, "/api/predict", {"code": "i"})
    assert status == 200 and data["code"] == "i " and len(data["candidates"]) >= 1
    assert data["candidates"][0]["word"] == ime_predictor.candidates("i ", [], 9)[0][0]


def test_convert_gives_the_phrase(ime_server):
    for codes in ["fitwchinme", "fi tw ch in me"]:
        status, data, _ = post(ime_server, "/api/convert", {"codes": codes})
        assert status == 200, data
        assert data["text"] == PHRASE and data["words"] == PHRASE.split()
        assert [s["code"] for s in data["steps"]] == ["fi", "tw", "ch", "in", "me"]
    status, data, _ = post(ime_server, "/api/convert", {"codes": "fitwchinme", "k": 4})
    assert status == 200 and all(1 <= len(s["candidates"]) <= 4 for s in data["steps"])
    status, data, _ = post(ime_server, "/api/convert", {"codes": "qxfi"})  # no word has code qx
    assert status == 200 and data["words"][0] == "[qx?]" and not data["steps"][0]["known"]


def test_phrase_converts_a_phrase_as_the_model_does(ime_server, ime_predictor):
    codes = ["fi", "tw", "ch", "in", "me"]
    status, data, _ = post(ime_server, "/api/phrase", {"codes": codes})
    assert status == 200 and data == {"words": ime_predictor.convert_phrase(codes, [])} and data["words"] == PHRASE.split()
    fixed = {2: ime_predictor.candidates("ch", ["first", "two"], 3)[2][0]}  # a picked word stays
    status, data, _ = post(ime_server, "/api/phrase", {"codes": codes, "context": ["the"], "fixed": {"2": fixed[2]}})
    assert status == 200 and data["words"] == ime_predictor.convert_phrase(codes, ["the"], fixed)
    assert data["words"][2] == fixed[2]


def test_convert_speaks_the_typing_language(ime_server, ime_predictor):
    status, data, _ = post(ime_server, "/api/convert", {"codes": 'Fitw, "chinme." /Ishmael (FI)', "k": 3})
    assert status == 200, data
    fi = ime_predictor.candidates("fi", PHRASE.split() + ["ishmael"], 1)[0][0]
    assert data["text"] == f'First two, "character input method." Ishmael ({fi.upper()})'
    assert [s["kind"] for s in data["steps"]][:3] == ["word", "word", "mark"]
    assert data["steps"][0] == {"kind": "word", "code": "fi", "word": "First", "known": True,
                                "candidates": data["steps"][0]["candidates"]}
    assert len(data["steps"][0]["candidates"]) == 3 and data["steps"][-4]["kind"] == "spelled"
    status, data, _ = post(ime_server, "/api/convert", {"codes": "th>2"})  # the eleventh candidate
    assert status == 200 and data["words"] == [ime_predictor.candidates("th", [], 11)[10][0]]


def test_learn_changes_the_servers_dictionary_and_only_it(start_ime_server, ime_predictor, tmp_path):
    path = tmp_path / "dict.json"
    server = start_ime_server("--user-dict", str(path))
    status, info, _ = request(server, "GET", "/api/info")
    assert status == 200 and info["learning"] is True
    status, data, _ = post(server, "/api/convert", {"codes": "/Ishmael fi2"})  # converting teaches nothing
    assert status == 200 and data["text"].startswith("Ishmael ") and not path.exists()
    words = lambda code: [c["word"] for c in post(server, "/api/predict", {"code": code, "k": 9})[1]["candidates"]]  # noqa: E731
    assert "ishmael" not in words("is")
    status, data, _ = post(server, "/api/learn", {"word": "ishmael"})
    assert status == 200 and data == {"word": "ishmael", "learnt": True, "count": 1}
    assert json.loads(path.read_text())["words"] == {"ishmael": 1}
    assert "ishmael" in words("is")[1:]  # offered, below the model's top word
    assert words("fi") == [w for w, _ in ime_predictor.candidates("fi", [], 9)]  # other codes: the model's own
    status, data, _ = post(server, "/api/learn", {"word": "ishmael", "undo": True})
    assert status == 200 and data["count"] == 0 and "ishmael" not in words("is")
    assert json.loads(path.read_text())["words"] == {}
    for body in [{"word": "Ishmael"}, {"word": "co-op"}, {"word": ""}, {"word": "a" * 65}, {"word": 3}, {},
                 {"word": "ishmael", "undo": "yes"}]:
        status, data, _ = post(server, "/api/learn", body)
        assert status == 422 and "\n" not in data["error"], body


def test_serve_refuses_a_damaged_user_dictionary(tmp_path, ime_ui_model):
    path = tmp_path / "dict.json"
    path.write_text("{")
    r = subprocess.run([*JAX_LLM, "ime", "serve", "--model", str(ime_ui_model), "--port", "0", "--user-dict", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and str(path) in r.stderr and r.stderr.count("\n") == 1 and path.read_text() == "{"


def test_page_and_info_are_served(ime_server):
    status, html, r = request(ime_server, "GET", "/")
    assert status == 200 and r.getheader("content-type").startswith("text/html")
    assert '<div id="editor"' in html and "/ime.js" in html
    status, js, r = request(ime_server, "GET", "/ime.js")
    assert status == 200 and "javascript" in r.getheader("content-type") and "/api/predict" in js
    status, css, _ = request(ime_server, "GET", "/ime.css")
    assert status == 200 and "#candidates" in css
    status, info, _ = request(ime_server, "GET", "/api/info")
    assert status == 200 and info["limits"]["body_bytes"] == 65536 and info["learning"] is False
    assert info["lookahead"] == 0
    assert info["keys"] == keys.page_keys() and info["keys"]["SPELL"] == keys.SPELL  # the page's only copy


BIG = b'{"code": "fi", "context": [' + b'"the",' * 11000 + b'"the"]}'  # about 66 KB
BAD = [
    # (what, method, path, body, headers, status)
    ("malformed JSON", "POST", "/api/predict", b'{"code": "fi"', {}, 400),
    ("empty body", "POST", "/api/predict", b"", {}, 400),
    ("not UTF-8", "POST", "/api/predict", b'{"code": "\xff\xfe"}', {}, 400),
    ("a list, not an object", "POST", "/api/predict", b'["fi"]', {}, 400),
    ("deeply nested", "POST", "/api/predict", b"[" * 50_000, {}, 400),
    ("body over 64 KB", "POST", "/api/predict", BIG, {}, 413),
    ("chunked body over 64 KB", "POST", "/api/convert", None, {}, 413),
    ("code missing", "POST", "/api/predict", b'{"context": []}', {}, 422),
    ("code a number", "POST", "/api/predict", b'{"code": 12}', {}, 422),
    ("code with a digit", "POST", "/api/predict", b'{"code": "f1"}', {}, 422),
    ("code uppercase", "POST", "/api/predict", b'{"code": "FI"}', {}, 422),
    ("code not ASCII", "POST", "/api/predict", '{"code": "fé"}'.encode(), {}, 422),
    ("code punctuation", "POST", "/api/predict", b'{"code": "f-"}', {}, 422),
    ("code empty", "POST", "/api/predict", b'{"code": ""}', {}, 422),
    ("code too long", "POST", "/api/predict", b'{"code": "fir"}', {}, 422),
    ("context a string", "POST", "/api/predict", b'{"code": "fi", "context": "the"}', {}, 422),
    ("context holds a number", "POST", "/api/predict", b'{"code": "fi", "context": ["the", 3]}', {}, 422),
    ("context word not letters", "POST", "/api/predict", b'{"code": "fi", "context": ["the!"]}', {}, 422),
    ("context word too long", "POST", "/api/predict", b'{"code": "fi", "context": ["' + b"a" * 65 + b'"]}', {}, 422),
    ("context too many words", "POST", "/api/predict", b'{"code": "fi", "context": [' + b'"a",' * 1000 + b'"a"]}',
     {}, 422),
    ("k a string", "POST", "/api/predict", b'{"code": "fi", "k": "9"}', {}, 422),
    ("k a boolean", "POST", "/api/predict", b'{"code": "fi", "k": true}', {}, 422),
    ("k a float", "POST", "/api/predict", b'{"code": "fi", "k": 2.5}', {}, 422),
    ("k zero", "POST", "/api/predict", b'{"code": "fi", "k": 0}', {}, 422),
    ("k huge", "POST", "/api/predict", b'{"code": "fi", "k": 100000000000000000000}', {}, 422),
    ("k NaN", "POST", "/api/predict", b'{"code": "fi", "k": NaN}', {}, 422),
    ("ahead a string", "POST", "/api/predict", b'{"code": "fi", "ahead": "tw"}', {}, 422),
    ("ahead holds a number", "POST", "/api/predict", b'{"code": "fi", "ahead": ["tw", 3]}', {}, 422),
    ("ahead code uppercase", "POST", "/api/predict", b'{"code": "fi", "ahead": ["TW"]}', {}, 422),
    ("ahead code too long", "POST", "/api/predict", b'{"code": "fi", "ahead": ["two"]}', {}, 422),
    ("ahead too many codes", "POST", "/api/predict", b'{"code": "fi", "ahead": [' + b'"tw",' * 16 + b'"tw"]}', {}, 422),
    ("codes missing", "POST", "/api/convert", b"{}", {}, 422),
    ("codes a list", "POST", "/api/convert", b'{"codes": ["fi"]}', {}, 422),
    ("codes with a key the language lacks", "POST", "/api/convert", b'{"codes": "fi@tw"}', {}, 422),
    ("codes with a digit that picks nothing", "POST", "/api/convert", b'{"codes": "fitw0"}', {}, 422),
    ("codes paging without a code", "POST", "/api/convert", b'{"codes": "f>"}', {}, 422),
    ("codes empty", "POST", "/api/convert", b'{"codes": "  "}', {}, 422),
    ("codes too long", "POST", "/api/convert", b'{"codes": "' + b"fi" * 2001 + b'"}', {}, 422),
    ("phrase codes missing", "POST", "/api/phrase", b'{"context": []}', {}, 422),
    ("phrase codes a string", "POST", "/api/phrase", b'{"codes": "fitw"}', {}, 422),
    ("phrase code too long", "POST", "/api/phrase", b'{"codes": ["fir"]}', {}, 422),
    ("phrase too many codes", "POST", "/api/phrase", b'{"codes": [' + b'"fi",' * keys.PHRASE_WORDS + b'"fi"]}', {}, 422),
    ("phrase fixed a list", "POST", "/api/phrase", b'{"codes": ["fi"], "fixed": ["first"]}', {}, 422),
    ("phrase fixed at no position", "POST", "/api/phrase", b'{"codes": ["fi"], "fixed": {"1": "first"}}', {}, 422),
    ("phrase fixed word of another code", "POST", "/api/phrase", b'{"codes": ["fi"], "fixed": {"0": "two"}}', {},
     422),
    ("phrase not an object", "POST", "/api/phrase", b'["fi"]', {}, 400),
    ("phrase from another page", "POST", "/api/phrase", b'{"codes": ["fi"]}', {"Origin": "http://evil.example"}, 403),
    ("learn on a server that does not learn", "POST", "/api/learn", b'{"word": "ishmael"}', {}, 403),
    ("unknown path", "POST", "/api/nothing", b"{}", {}, 404),
    ("GET on the API", "GET", "/api/predict", None, {}, 405),
    # refused before any route (guard.py; test_ime_serve_safety.py has the browser and the dictionary)
    ("POST as text/plain", "POST", "/api/learn", b'{"word": "pwned"}', {"Content-Type": "text/plain"}, 415),
    ("POST as a form", "POST", "/api/predict", b'{"code": "fi"}',
     {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("POST with an empty Content-Type", "POST", "/api/predict", b'{"code": "fi"}', {"Content-Type": ""}, 415),
    ("another page's Origin", "GET", "/api/info", None, {"Origin": "http://evil.example"}, 403),
    ("another page's Origin on a POST", "POST", "/api/predict", b'{"code": "fi"}', {"Origin": "http://evil.example"},
     403),
    ("a foreign Host", "GET", "/api/info", None, {"Host": "evil.example:8000"}, 421),
]


@pytest.mark.parametrize("what,method,path,body,headers,status", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_4xx_and_a_json_error(ime_server, what, method, path, body, headers, status):
    if what.startswith("chunked"):
        # an iterable body: http.client sends it chunked, without Content-Length
        body = iter([b'{"codes": "' + b"fi" * 20_000, b"fi" * 20_000 + b'"}'])
    if method == "POST" and "Content-Type" not in headers:  # the row is about the body: sent as JSON
        headers = headers | {"Content-Type": "application/json"}
    got, data, _ = request(ime_server, method, path, body, headers)
    assert got == status, (what, data)
    assert isinstance(data, dict) and isinstance(data["error"], str) and data["error"], data
    assert "\n" not in data["error"]
    # and the server still answers
    ok, data, _ = post(ime_server, "/api/predict", {"code": "fi"})
    assert ok == 200 and data["candidates"]


def test_a_lookahead_model_ranks_with_the_codes_ahead(ime_lookahead_server, ime_lookahead_predictor, ime_server,
                                                      ime_predictor, revision_case):
    status, info, _ = request(ime_lookahead_server, "GET", "/api/info")
    assert status == 200 and info["lookahead"] == 1
    i, old, new = revision_case.revisions[0]  # code i changes the ranking of word i-1
    body = {"code": revision_case.codes[i - 1], "context": revision_case.words[:i - 1], "k": 5}
    ranked = {}
    for ahead in ([], [revision_case.codes[i].strip()]):  # a one-letter code may be the letter alone here too
        status, data, _ = post(ime_lookahead_server, "/api/predict", body | {"ahead": ahead})
        assert status == 200, data
        ranked[len(ahead)] = [c["word"] for c in data["candidates"]]
        want = ime_lookahead_predictor.candidates(body["code"], body["context"], 5, ahead=[revision_case.codes[i]][:len(ahead)])
        assert ranked[len(ahead)] == [w for w, _ in want]
    assert ranked[0][0] == old and ranked[1][0] == new
    joint = ime_lookahead_predictor.convert_phrase(revision_case.codes, [])  # the end of the codes ends a phrase
    status, data, _ = post(ime_lookahead_server, "/api/convert", {"codes": revision_case.keys})
    assert status == 200 and data["text"] == " ".join(joint)
    status, data, _ = post(ime_lookahead_server, "/api/phrase", {"codes": revision_case.codes})
    assert status == 200 and data["words"] == joint
    # a model without lookahead ignores `ahead`
    status, data, _ = post(ime_server, "/api/predict", {"code": "tw", "context": ["first"], "ahead": ["ch", "in"]})
    assert status == 200 and [c["word"] for c in data["candidates"]] == expected_predict(ime_predictor, "tw", ["first"], 9)


def answer(path: str, data) -> object:
    return data["text"] if path == "/api/convert" else [c["word"] for c in data["candidates"]]


def hammer(server, cases, clients: int = 50, per_client: int = 20) -> None:
    """`clients` threads, each on its own keep-alive connection, send `per_client` requests from `cases`
    [(path, body, expected answer)] at once; every answer must be the expected one."""
    results: list[list[bool]] = [[] for _ in range(clients)]
    failures: list[str] = []
    start = threading.Barrier(clients)

    def client(n: int):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)  # one keep-alive each
        try:
            start.wait(60)
            for j in range(per_client):
                path, body, want = cases[(n + j) % len(cases)]
                status, data, _ = post(server, path, body, conn)
                results[n].append(status == 200 and answer(path, data) == want)
        except Exception as e:  # noqa: BLE001 - recorded, then asserted below
            failures.append(f"client {n}: {e!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:5]
    assert [len(r) for r in results] == [per_client] * clients
    assert all(all(r) for r in results)
    assert server.proc.poll() is None  # still up, still right


def typing_cases(words):
    """(path, body) of a predict request at each word of `words`, with up to 3 words of context."""
    return [("/api/predict", {"code": w[:2] if len(w) > 1 else w + " ", "context": words[max(0, i - 3):i], "k": 5})
            for i, w in enumerate(words)]


def test_fifty_concurrent_clients_get_correct_answers(ime_server, ime_predictor):
    words = PHRASE.split() + "the king is dead and i know not what to say".split()
    cases = [(path, body, expected_predict(ime_predictor, body["code"], body["context"], 5))
             for path, body in typing_cases(words)]
    cases.append(("/api/convert", {"codes": "fitwchinme"}, PHRASE))
    hammer(ime_server, cases)
    status, data, _ = post(ime_server, "/api/convert", {"codes": "fitwchinme"})
    assert status == 200 and data["text"] == PHRASE
    assert ime_server.model_unchanged()  # the model was only read


def test_fifty_concurrent_clients_of_a_transformer_get_the_sequential_answers(ime_transformer_server):
    """The Transformer keeps a KV cache between keystrokes: concurrent requests must not share it
    half-updated. Each answer is compared with the one the same server gave when asked alone."""
    server = ime_transformer_server
    words = PHRASE.split() + "the king is dead and i know not what to say".split()
    requests = typing_cases(words) + [("/api/convert", {"codes": "fitwchinme"}),
                                      ("/api/convert", {"codes": "thkiisdeanikn"})]
    cases = []
    for path, body in requests:
        status, data, _ = post(server, path, body)
        assert status == 200, data
        cases.append((path, body, answer(path, data)))
    hammer(server, cases)
    assert server.model_unchanged()


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on `port`, read from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        ip_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(".".join(str(int(ip_hex[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_binds_loopback_by_default_and_stops_on_ctrl_c(ime_server, start_ime_server):
    assert build_parser().parse_args(["ime", "serve"]).host == "127.0.0.1"
    assert ime_server.url.startswith("http://127.0.0.1:")
    assert _listening_addresses(ime_server.port) == {"127.0.0.1"}
    second = start_ime_server()
    status, _, _ = request(second, "GET", "/api/info")
    assert status == 200
    assert second.stop() == 0  # SIGINT: a clean exit


@pytest.mark.parametrize("args,message", [
    (["--model", "/nonexistent/model"], "model not found"),
    (["--port", "70000"], "--port must be 0..65535"),
    *[(["--allow-host", value], "--allow-host must be a host name or address")  # before the model loads
      for value in ["", "a b", "0.0.0.0", "[::]", "*", "box.example:99999", "[not-v6]", "http://box"]],
])
def test_serve_cli_errors_are_one_line(args, message):
    r = subprocess.run([*JAX_LLM, "ime", "serve", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1


def test_port_in_use_is_a_clear_error(ime_server, ime_ui_model):
    r = subprocess.run([*JAX_LLM, "ime", "serve", "--model", str(ime_ui_model), "--port", str(ime_server.port)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot listen" in r.stderr and r.stderr.count("\n") == 1
