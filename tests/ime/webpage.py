"""Helpers for driving the input method's page in Playwright (test_ime_web.py, test_ime_moby.py)."""

from contextlib import contextmanager

from playwright.sync_api import expect

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never a downloaded browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright, *extra_args: str):
    """Headless Chromium (the system's), with `extra_args` after the flags every test needs."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])


@contextmanager
def open_page(browser, url: str, **context_args):
    """The page at `url` in a fresh browser context, its script running; afterwards, no page errors."""
    context = browser.new_context(**({"viewport": {"width": 900, "height": 600}} | context_args))
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # the page's own errors; a 4xx the page asked for (a bad code string) is logged too, and is not one
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and "Failed to load resource" not in m.text else None)
    pg.goto(url + "/")
    expect(pg.locator("#model")).not_to_have_text("…")  # /api/info answered: the script runs
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


def settled(pg) -> None:
    """Every key typed so far has been handled (the page handles keys one at a time, in order)."""
    expect(pg.locator("body")).to_have_attribute("data-busy", "false")


def candidates(pg) -> list[str]:
    """The candidates shown, as the page writes them (a capitalised code capitalises them)."""
    return [t.lstrip("0123456789").strip() for t in pg.locator("#candidates li").all_inner_texts()]


def text(pg) -> str:
    """The text confirmed so far, exactly (newlines and spaces as they are)."""
    return pg.locator("#accepted").text_content()
