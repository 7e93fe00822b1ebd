"""`jax-llm ime serve` answers only requests addressed to it, from its own page or from clients that are no
page (issue 21): a page on another local port, in headless Chromium, cannot teach or read; nor can a
request with a foreign Host or Origin sent as curl would; the dictionary stays as it was."""

import http.client
import http.server
import json
import subprocess
import threading

import pytest
from playwright.sync_api import expect

from helpers import JAX_LLM
from jax_llm.errors import UserError
from jax_llm.ime.apps import guard
from webpage import launch_chromium

EVIL = "http://evil.example"


def send(port: int, method: str, path: str, headers: dict, body: bytes | None = None):
    """(status, decoded JSON body) of one request to 127.0.0.1:`port` with exactly `headers` (no Host
    unless they hold one), as curl sends it with -H."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in (headers | ({"Content-Length": str(len(body))} if body is not None else {})).items():
            c.putheader(k, v)
        c.endheaders(body)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def dict_words(path) -> str:
    r = subprocess.run([*JAX_LLM, "ime", "dict", "list", "--user-dict", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def learning_server(start_ime_server, tmp_path):
    path = tmp_path / "dict.json"
    server = start_ime_server("--user-dict", str(path))
    server.dict_path = path
    return server


def test_foreign_host_origin_and_content_type_are_refused_and_teach_nothing(learning_server):
    s, port = learning_server, learning_server.port
    own = f"127.0.0.1:{port}"
    learn = json.dumps({"word": "pwned"}).encode()
    refused = [  # (headers, method, path, status): the curl first
        ({"Host": own, "Origin": EVIL, "Content-Type": "text/plain"}, "POST", "/api/learn", 403),
        ({"Host": own, "Origin": EVIL, "Content-Type": "application/json"}, "POST", "/api/learn", 403),
        ({"Host": own, "Origin": EVIL}, "GET", "/api/info", 403),
        ({"Host": own, "Origin": f"http://127.0.0.1:{port + 1 if port < 65535 else 1}"}, "GET", "/api/info", 403),
        ({"Host": own, "Origin": "null"}, "POST", "/api/predict", 403),
        ({"Host": own, "Origin": f"https://{own}"}, "GET", "/", 403),
        ({"Host": own, "Content-Type": "text/plain"}, "POST", "/api/learn", 415),
        ({"Host": own, "Content-Type": "application/x-www-form-urlencoded"}, "POST", "/api/learn", 415),
        ({"Host": own}, "POST", "/api/learn", 415),
        ({"Host": f"evil.example:{port}", "Content-Type": "application/json"}, "POST", "/api/learn", 421),
        ({"Host": f"evil.example:{port}"}, "GET", "/api/info", 421),
        ({"Host": f"evil.example:{port}"}, "GET", "/", 421),
        ({"Host": f"0.0.0.0:{port}"}, "GET", "/api/info", 421),
        ({"Host": f"127.0.0.1:{port + 1 if port < 65535 else 1}"}, "GET", "/api/info", 421),
    ]
    for headers, method, path, status in refused:
        got, data = send(port, method, path, headers, learn if method == "POST" else None)
        assert got == status, (headers, method, path, data)
        assert isinstance(data["error"], str) and data["error"] and "\n" not in data["error"], data
    assert not s.dict_path.exists() and dict_words(s.dict_path) == ""  # taught nothing
    # its own clients: no Origin (curl, scripts), its own page's Origin, localhost and [::1] as names
    for headers in [{"Host": own}, {"Host": own, "Origin": f"http://{own}"},
                    {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}, {"Host": f"[::1]:{port}"}]:
        got, data = send(port, "GET", "/api/info", headers)
        assert got == 200 and data["learning"] is True, (headers, data)
    got, data = send(port, "POST", "/api/learn", {"Host": own, "Origin": f"http://{own}",
                                                  "Content-Type": "application/json; charset=utf-8"}, learn)
    assert got == 200 and data == {"word": "pwned", "learnt": True, "count": 1}
    assert dict_words(s.dict_path).split() == ["1", "pwned"]


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on a second local port (another origin), whose script tries the input method's API."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"<!doctype html><title>another site</title><p>hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def attacker_page():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# Each fetch in the attacking page: what it sends, and whether the browser lets it reach the server.
ATTEMPTS = """async (api) => {
  const body = JSON.stringify({word: "pwned"});
  const tries = {
    "POST text/plain (no preflight)": () => fetch(api + "/api/learn", {method: "POST", body,
        headers: {"Content-Type": "text/plain"}}),
    "POST text/plain, no-cors": () => fetch(api + "/api/learn", {method: "POST", body, mode: "no-cors",
        headers: {"Content-Type": "text/plain"}}),
    "POST application/json (preflight)": () => fetch(api + "/api/learn", {method: "POST", body,
        headers: {"Content-Type": "application/json"}}),
    "GET /api/info": () => fetch(api + "/api/info"),
    "POST /api/predict": () => fetch(api + "/api/predict", {method: "POST",
        body: JSON.stringify({code: "fi"}), headers: {"Content-Type": "text/plain"}}),
  };
  const out = {};
  for (const [what, f] of Object.entries(tries)) {
    try {
      const r = await f();
      out[what] = r.type === "opaque" ? "opaque" : "read " + r.status + " " + (await r.text());
    } catch (e) {
      out[what] = "refused";
    }
  }
  return out;
}"""


LEARN = """async (word) => (await fetch("/api/learn", {method: "POST", headers: {"Content-Type": "application/json"},
                                                     body: JSON.stringify({word})})).status"""


def test_a_page_on_another_port_can_neither_teach_nor_read(browser, learning_server, attacker_page):
    api = learning_server.url
    context = browser.new_context()
    try:
        pg = context.new_page()
        statuses = []  # what the server answered, where the browser lets Playwright see it
        pg.on("response", lambda r: statuses.append((r.request.method, r.url, r.status))
              if r.url.startswith(api) else None)
        pg.goto(attacker_page)
        expect(pg.locator("p")).to_have_text("hello")
        out = pg.evaluate(ATTEMPTS, api)
        taught = dict_words(learning_server.dict_path)
        # the server's own page, in the same browser, still learns (the check tells the pages apart)
        own = context.new_page()
        own.goto(api + "/")
        learnt = own.evaluate(LEARN, "ishmael")
    finally:
        context.close()
    # the page could read nothing: every fetch failed or came back opaque
    assert set(out.values()) <= {"refused", "opaque"}, out
    assert out["GET /api/info"] == "refused" and out["POST text/plain, no-cors"] == "opaque", out
    # the simple requests reached the server, which refused them: Playwright sees the status of the
    # no-cors one (the others' responses are withheld by CORS; the preflighted POST never left)
    reached = {(m, u.removeprefix(api)): st for m, u, st in statuses}
    assert reached.get(("POST", "/api/learn")) == 403, statuses
    assert all(st == 403 for st in reached.values()), statuses
    assert taught == ""  # nothing learnt
    assert learnt == 200 and dict_words(learning_server.dict_path).split() == ["1", "ishmael"]


def test_a_rebinding_name_gets_421_in_the_browser(playwright_driver, learning_server):
    """A DNS-rebinding page: the browser resolves the attacker's name to 127.0.0.1 (as a rebinding DNS
    server would), so the page is same-origin with the server in the browser's eyes; the Host refuses it."""
    port = learning_server.port
    b = launch_chromium(playwright_driver, "--host-resolver-rules=MAP evil.example 127.0.0.1")
    try:
        pg = b.new_page()
        r = pg.goto(f"http://evil.example:{port}/")
        assert r.status == 421 and "not this server's" in json.loads(r.text())["error"]
        assert pg.evaluate(LEARN, "pwned") == 421
    finally:
        b.close()
    assert not learning_server.dict_path.exists()


def test_allow_host_names_more_hosts_and_start_up_says_which(start_ime_server):
    server = start_ime_server("--allow-host", "box.example", "--allow-host", "Other.Example:9")
    line = server.proc.stdout.readline()
    port = server.port
    want = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"box.example:{port}", "other.example:9"]
    assert ", ".join(want) in line, line
    assert send(port, "GET", "/api/info", {"Host": f"box.example:{port}"})[0] == 200
    assert send(port, "GET", "/api/info", {"Host": "other.example:9", "Origin": "http://other.example:9"})[0] == 200
    assert send(port, "GET", "/api/info", {"Host": f"other.example:{port}"})[0] == 421
    assert send(port, "GET", "/api/info", {"Host": f"box.example:{port}", "Origin": "http://other.example:9"})[0] == 200
    assert send(port, "GET", "/api/info", {"Host": f"box.example:{port}", "Origin": EVIL})[0] == 403


def test_listening_everywhere_answers_only_the_named_hosts():
    """With --host 0.0.0.0 (or ::), neither name is a Host: a page addressing 0.0.0.0 is refused, and
    only loopback names and --allow-host ones are answered (no socket is opened here)."""
    for everywhere in ("0.0.0.0", "::"):
        assert guard.allowed_hosts(everywhere, 8000, ["box.lan"]) == [
            "127.0.0.1:8000", "localhost:8000", "[::1]:8000", "box.lan:8000"]
    assert guard.allowed_hosts("::1", 8000) == ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]
    assert guard.allowed_hosts("127.0.0.2", 80)[-1] == "127.0.0.2:80"
    hosts = guard.allowed_hosts("0.0.0.0", 80)
    assert guard.refusal("GET", {"host": "localhost"}, hosts) is None  # no port: http's 80
    assert guard.refusal("GET", {"host": "0.0.0.0"}, hosts)[0] == 421
    with pytest.raises(UserError, match="--allow-host"):
        guard.parse_allowed("0.0.0.0", 80)
