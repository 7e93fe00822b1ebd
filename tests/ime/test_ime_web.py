"""The web page of `jax-llm ime serve` in a real browser: Debian's headless Chromium driven by Playwright,
at a desktop size and on a phone-sized screen."""

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect
from helpers import PHRASE
from webpage import candidates, open_page, settled, text

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def page(browser, ime_server):
    with open_page(browser, ime_server.url) as pg:
        yield pg


def test_typing_codes_converts_live_and_a_digit_picks(page, ime_predictor, tmp_path):
    editor = page.locator("#editor")
    expect(page.locator("#keys")).to_be_focused()  # an input element: a phone opens its keyboard for it
    page.keyboard.type("fitwchinme")
    settled(page)
    expect(editor).to_have_text(PHRASE)  # the last word is shown as the prediction, not yet accepted
    expect(page.locator("#current")).to_have_text("method")
    context = PHRASE.split()[:4]
    assert candidates(page) == [w for w, _ in ime_predictor.candidates("me", context, 9)]

    page.keyboard.press("Enter")  # accept
    settled(page)
    expect(editor).to_have_text(PHRASE)
    expect(page.locator("#candidates li")).to_have_count(0)

    page.keyboard.type("th")  # many words start with th: pick the third with a digit
    settled(page)
    want = [w for w, _ in ime_predictor.candidates("th", PHRASE.split(), 9)]
    assert len(want) >= 3 and candidates(page) == want
    page.keyboard.press("3")
    settled(page)
    expect(editor).to_have_text(f"{PHRASE} {want[2]}")

    page.keyboard.type("fi")  # and a click picks too
    settled(page)
    second = [w for w, _ in ime_predictor.candidates("fi", [*PHRASE.split(), want[2]], 9)][1]
    page.locator("#candidates li").nth(1).click()
    settled(page)
    expect(editor).to_have_text(f"{PHRASE} {want[2]} {second}")

    page.keyboard.type("tw")
    settled(page)
    page.evaluate("document.querySelector('.caret').style.animation = 'none'")  # a still picture
    shot = tmp_path / "ime-web.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("JAX_LLM_DOCS_SCREENSHOTS") == "1":  # docs/ime-web.png
        shutil.copy(shot, DOCS / "ime-web.png")


def test_backspace_undoes_and_bad_keys_are_explained(page, ime_predictor):
    editor = page.locator("#editor")
    page.keyboard.type("fitw")
    settled(page)
    expect(editor).to_have_text("first two")
    page.keyboard.press("Backspace")  # the second letter of "tw"
    settled(page)
    expect(editor).to_have_text("first t")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")  # takes back "first": its code and candidates again
    settled(page)
    expect(page.locator("#code")).to_have_text("fi:")
    expect(page.locator("#current")).to_have_text("first")
    page.keyboard.press("@")
    settled(page)
    expect(page.locator("#status")).to_contain_text("not a key here")
    expect(page.locator("#current")).to_have_text("first")  # nothing changed
    page.keyboard.type(" i am")  # space accepts; "i" + space is a one-letter word's code
    page.keyboard.press("Enter")
    settled(page)
    words = ["first"]
    for code in ["i ", "am"]:
        words.append(ime_predictor.candidates(code, words, 1)[0][0])
    expect(editor).to_have_text(" ".join(words))
    expect(page.locator("#status")).to_have_text("")


def test_capitals_punctuation_paging_and_spelling(page, ime_predictor):
    page.keyboard.type('Fitw, "ch')
    settled(page)
    assert candidates(page)[0] == ime_predictor.candidates("ch", ["first", "two"], 1)[0][0]
    page.keyboard.type('" /Zara')
    settled(page)
    expect(page.locator("#code")).to_have_text("spell:")
    expect(page.locator("#current")).to_have_text("/Zara")
    page.keyboard.type("thustra. th")
    settled(page)
    context = ["first", "two", "character", "zarathustra"]
    th = [w for w, _ in ime_predictor.candidates("th", context, 30)]
    assert candidates(page) == th[:9]
    expect(page.locator("#more")).to_be_visible()
    page.keyboard.press(">")  # the next nine
    settled(page)
    assert candidates(page) == th[9:18]
    page.locator("#more").click()  # the button pages too
    settled(page)
    assert candidates(page) == th[18:27]
    page.keyboard.press("2")
    settled(page)
    assert text(page) == f'First two, "{ime_predictor.candidates("ch", ["first", "two"], 1)[0][0]}" Zarathustra. {th[19]}'


def converted_and_typed(page, server, keys: str) -> tuple[str, str]:
    """The text /api/convert gives for `keys`, and the text the page gives when they are typed."""
    request = urllib.request.Request(server.url + "/api/convert", json.dumps({"codes": keys}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        want = json.loads(r.read())["text"]
    page.locator("#clear").click()
    for ch in keys:
        page.keyboard.press({"\n": "Enter", "\x7f": "Backspace", "\t": "Tab"}.get(ch, ch))
    page.keyboard.press("Tab")  # the end of input, as /api/convert ends it: the word shown is accepted, the phrase converted
    settled(page)
    expect(page.locator("#status")).to_have_text("")
    return want, text(page)


def test_the_page_speaks_the_same_language_as_the_server(page, ime_server):
    """static/ime.js mirrors composer.py: the same keys give the same text in the page as in /api/convert."""
    for keys in ['Fitw, "chinme" (FI) - i  1851!', "/don't /Moby-Dick, I. th2th>1th>>>>3", "ca\n\nMe xq; a  2 be3",
                 "'th' /Zarathustra's (/x) fi\x7f\x7f\x7fTH>>2!", "/abc\x7f\x7fd ef", "fitw\tch in. me\t\tfi"]:
        want, got = converted_and_typed(page, ime_server, keys)
        assert got == want, keys


def test_a_lookahead_model_revises_in_the_page_as_in_the_server(browser, ime_lookahead_server, revision_case,
                                                                ime_lookahead_predictor):
    """The page revises the word before each new code as composer.py does, and marks the word it replaced."""
    codes = revision_case.codes
    i, old, new = revision_case.revisions[0]  # the first: typing code i replaces word i-1
    with open_page(browser, ime_lookahead_server.url) as pg:
        pg.keyboard.type("".join(codes[:i + 1]))
        settled(pg)
        revised = pg.locator("#accepted .revised")
        expect(revised).to_have_text(new)
        expect(revised).to_have_attribute("title", f"revised: was {old}")
        assert text(pg) == " ".join(revision_case.words[:i]) + " "
        expect(pg.locator("#current")).to_have_text(revision_case.shown[i])
        pg.keyboard.press(" ")  # the next key: no longer marked
        settled(pg)
        expect(revised).to_have_count(0)
        assert text(pg) == " ".join([*revision_case.words[:i], revision_case.shown[i]])

        want, got = converted_and_typed(pg, ime_lookahead_server, revision_case.keys)  # converted at the end
        assert got == want == " ".join(ime_lookahead_predictor.convert_phrase(codes, []))
        before, after = "".join(codes[:i]), "".join(codes[i:])
        want, got = converted_and_typed(pg, ime_lookahead_server, before + "1" + after)
        assert got == want and got.split()[i - 1] == old  # a word picked with a digit stands
        for keys in [codes[0].capitalize() + before[2:] + codes[i] + "\x7f\x7f\x7f" + "".join(codes[i - 1:]) + ".",
                     before + ", " + after]:
            want, got = converted_and_typed(pg, ime_lookahead_server, keys)
            assert got == want, keys


def test_the_convert_form_converts_a_whole_string(page):
    page.fill("#codes", "fitwchinme")
    page.click("#convert-form button")
    expect(page.locator("#convert-out")).to_have_text(PHRASE)
    page.fill("#codes", "Fitw, ch.")
    page.click("#convert-form button")
    expect(page.locator("#convert-out")).to_contain_text("First two, ")
    page.fill("#codes", "fitw@")
    page.click("#convert-form button")
    expect(page.locator("#convert-out")).to_contain_text("error: invalid character '@'")


def test_on_a_phone(browser, ime_server, ime_predictor, tmp_path):
    """360 x 740, touch: the text arrives as input events (as an on-screen keyboard sends it), candidates are
    touch targets of 44 px or more, nothing is wider than the screen. `JAX_LLM_DOCS_SCREENSHOTS=1` also writes
    docs/ime-phone.png."""
    phone = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    with open_page(browser, ime_server.url, **phone) as pg:
        keys = pg.locator("#keys")
        expect(keys).to_be_focused()
        assert pg.evaluate("document.activeElement.tagName") == "INPUT"
        for chunk in ["Fitwch", "inme. Th"]:  # an on-screen keyboard: no key events, text in the input
            keys.fill(chunk)
            settled(pg)
        expect(keys).to_have_value("")  # taken as keys, then cleared
        assert text(pg) == "First two character input method. "
        th = [w.capitalize() for w, _ in ime_predictor.candidates("th", PHRASE.split(), 9)]
        assert candidates(pg) == th
        boxes = [li.bounding_box() for li in pg.locator("#candidates li").all()]
        boxes.append(pg.locator("#more").bounding_box())
        assert all(b["height"] >= 44 and b["width"] >= 44 for b in boxes), boxes
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= 360 for b in boxes), boxes
        widths = pg.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1] == 360, widths  # no horizontal scrolling
        pg.locator("#candidates li").nth(2).tap()
        settled(pg)
        assert text(pg) == f"First two character input method. {th[2]}"
        keys.fill("wo")
        settled(pg)
        pg.evaluate("document.querySelector('.caret').style.animation = 'none'")  # a still picture
        shot = tmp_path / "ime-phone.png"
        pg.screenshot(path=str(shot))  # what the phone shows
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        widths = pg.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], widths
    if os.environ.get("JAX_LLM_DOCS_SCREENSHOTS") == "1":
        shutil.copy(shot, DOCS / "ime-phone.png")
