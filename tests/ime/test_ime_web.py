"""The web page of `jax-llm ime serve` in a real browser: Debian's headless Chromium driven by Playwright."""

import pytest
from playwright.sync_api import expect, sync_playwright

PHRASE = "first two character input method"  # spliced into the test model's corpus (conftest.py)
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never a downloaded browser
expect.set_options(timeout=30_000)  # a bound for a loaded 2-core CI machine, not a timing assertion
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, ime_server):
    context = browser.new_context(viewport={"width": 900, "height": 600})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # the page's own errors; a 4xx the page asked for (a bad code string) is logged too, and is not one
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and "Failed to load resource" not in m.text else None)
    pg.goto(ime_server.url + "/")
    expect(pg.locator("#model")).not_to_have_text("…")  # /api/info answered: the script runs
    yield pg
    context.close()
    assert not errors, errors


def settled(pg) -> None:
    """Every key typed so far has been handled (the page handles keys one at a time, in order)."""
    expect(pg.locator("body")).to_have_attribute("data-busy", "false")


def candidates(pg) -> list[str]:
    return [t.lstrip("0123456789").strip() for t in pg.locator("#candidates li").all_inner_texts()]


def test_typing_codes_converts_live_and_a_digit_picks(page, ime_predictor, tmp_path):
    editor = page.locator("#editor")
    expect(editor).to_be_focused()
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
    shot = tmp_path / "ime-web.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


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
    page.keyboard.press("X")
    settled(page)
    expect(page.locator("#status")).to_contain_text("lowercase letters")
    expect(page.locator("#current")).to_have_text("first")  # nothing changed
    page.keyboard.type(" i am")  # space accepts; "i" + space is a one-letter word's code
    page.keyboard.press("Enter")
    settled(page)
    words = ["first"]
    for code in ["i ", "am"]:
        words.append(ime_predictor.candidates(code, words, 1)[0][0])
    expect(editor).to_have_text(" ".join(words))
    expect(page.locator("#status")).to_have_text("")


def test_the_convert_form_converts_a_whole_string(page):
    page.fill("#codes", "fitwchinme")
    page.click("#convert-form button")
    expect(page.locator("#convert-out")).to_have_text(PHRASE)
    page.fill("#codes", "fitw3")
    page.click("#convert-form button")
    expect(page.locator("#convert-out")).to_contain_text("error: invalid character '3'")
