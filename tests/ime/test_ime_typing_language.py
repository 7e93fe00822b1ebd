"""The typing language, one set of cases for both of its implementations: each case of typing_cases.json
(keys in; text, revisions and refused keys out) is typed into the composer (`ime type`, `ime convert`)
and, key by key, into the page's ime.js in headless Chromium, served by `create_app` around the same
fake model (the page converts a phrase through /api/phrase). The page takes its keys from the server: it
holds no copy of them."""

import json
import socket
import threading
from pathlib import Path

import pytest
from webpage import open_page, settled, text

from jax_llm.ime.apps import serve
from jax_llm.ime.apps.composer import Composer
from jax_llm.ime.language import keys
from jax_llm.ime.predictor import Predictor

CASES = json.loads((Path(__file__).parent / "typing_cases.json").read_text())
PAGE_KEYS = {"\n": "Enter", "\x7f": "Backspace", "\t": "Tab"}


class Listed(Predictor):
    """A model that ranks each code's words as listed (or as listed after the previous word); a lookahead
    model picks its row by the codes after. Its phrases are converted by the default `convert_phrase`."""

    def __init__(self, spec: dict):
        self.lookahead, self.words, self.after = spec["lookahead"], spec["words"], spec.get("after", {})

    def candidates(self, code, context, k=10, ahead=()):
        rows = self.after.get(context[-1] if context else "", {}).get(code) or self.words.get(code, [[]])
        row = rows[min(len(ahead[: self.lookahead]), len(rows) - 1)]
        return [tuple(w) if isinstance(w, list) else (w, -1.0 - i) for i, w in enumerate(row)][:k]


MODELS = {name: Listed(spec) for name, spec in CASES["models"].items()}
IDS = [f"{c['model']}:{c['keys']!r}" for c in CASES["cases"]]


def composed(case: dict) -> dict:
    composer = Composer(MODELS[case["model"]])
    revised, refused = [], []
    for i, ch in enumerate(case["keys"]):
        if composer.key(ch) is not None:
            refused.append(i)
        revised += [list(r) for r in composer.revised]
    return {"text": composer.text(), "revised": revised, "refused": refused}


@pytest.mark.parametrize("case", CASES["cases"], ids=IDS)
def test_the_composer_types_each_case(case):
    assert composed(case) == {k: case[k] for k in ("text", "revised", "refused")}


def test_the_cases_cover_the_language():
    typed = "".join(c["keys"] for c in CASES["cases"])
    for key in [keys.SPELL, keys.NEXT_PAGE, *keys.PUNCTUATION, *keys.SPELL_INSIDE, "1", "0", keys.ENTER[1],
                keys.BACKSPACE[0], " ", "F", "I", keys.CONVERT]:
        assert key in typed, key
    assert any(c["revised"] for c in CASES["cases"]) and any(c["refused"] for c in CASES["cases"])
    for end in [*keys.PHRASE_END, keys.ENTER[1], keys.CONVERT]:  # each end of a phrase converts one
        assert any(end in c["keys"] and c["revised"] and c["model"] == "phrase" for c in CASES["cases"]), end


def test_the_page_holds_no_copy_of_the_keys():
    js = (Path(serve.__file__).parent / "static" / "ime.js").read_text()
    for name, value in keys.page_keys().items():
        assert f"const {name} =" not in js, name
        if isinstance(value, str) and len(value) > 2:
            assert json.dumps(value)[1:-1] not in js and value not in js, name


@pytest.fixture(scope="module")
def fake_servers():
    """One in-process server of each fake model, on free ports."""
    import uvicorn

    servers, urls = [], {}
    for name, model in MODELS.items():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        server = uvicorn.Server(uvicorn.Config(serve.create_app(model, name), log_level="warning", lifespan="off"))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield urls
    for server in servers:
        server.should_exit = True


@pytest.mark.parametrize("case", CASES["cases"], ids=IDS)
def test_the_page_types_each_case(case, browser, fake_servers):
    revised, refused = [], []
    with open_page(browser, fake_servers[case["model"]]) as pg:
        for i, ch in enumerate(case["keys"]):
            pg.keyboard.press(PAGE_KEYS[ch]) if ch in PAGE_KEYS else pg.keyboard.type(ch)
            settled(pg)
            for span in pg.locator("#accepted span.revised").all():
                revised.append([span.get_attribute("title").removeprefix("revised: was "), span.text_content()])
            if pg.locator("#status").text_content():
                refused.append(i)
        got = {"text": text(pg), "revised": revised, "refused": refused}
    assert got == {k: case[k] for k in ("text", "revised", "refused")}


def test_tab_converts_in_the_page_and_keeps_the_focus(browser, fake_servers):
    with open_page(browser, fake_servers["phrase"]) as pg:
        pg.keyboard.type("Rebo")
        pg.keyboard.press("Tab")  # the page takes it (preventDefault): the focus stays in the input
        settled(pg)
        assert text(pg) == "Read book" and pg.evaluate("document.activeElement.id") == "keys"
        spans = pg.locator("#accepted span.revised")
        assert [(s.get_attribute("title"), s.text_content()) for s in spans.all()] == [
            ("revised: was Red", "Read"), ("revised: was box", "book")]
