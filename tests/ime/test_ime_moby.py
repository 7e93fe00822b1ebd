"""Done when: the first two sentences of Moby-Dick typed through a pipe and in the page, with their capitals
and punctuation, "Ishmael" spelled in full once, give the exact text back; the next session offers
"ishmael" for `is` without spelling it. The keys are chosen from the candidates shown (moby.py) with the
test's small kn model; the keystroke count is printed beside the character count (run with -s to see it)."""

import shutil
import subprocess

from helpers import JAX_LLM
from moby import MOBY, plan, typed_keys
from playwright.sync_api import expect
from webpage import candidates, open_page, settled, text

from jax_llm.ime.apps.composer import Composer
from jax_llm.ime.language.keys import SPELL
from jax_llm.ime.apps.userdict import UserDict
from jax_llm.ime.combine import WithUserWords



def mirror_of(predictor, user_dict, tmp_path, name: str) -> tuple[Composer, UserDict]:
    """A composer like the session's: the same model, and a copy of its user dictionary as it is now."""
    copy = tmp_path / f"{name}.json"
    if user_dict.exists():
        shutil.copy(user_dict, copy)
    d = UserDict(copy)
    return Composer(WithUserWords(predictor, d), learner=d), d


def spelled(steps) -> list[str]:
    return [piece for piece, keys, _ in steps if keys.startswith(SPELL)]


def test_moby_dick_through_a_pipe(ime_ui_model, ime_predictor, tmp_path):
    user_dict = tmp_path / "user-dict.json"
    counts = []
    for session in (1, 2):
        mirror, mirror_dict = mirror_of(ime_predictor, user_dict, tmp_path, f"mirror{session}")
        steps = plan(mirror, MOBY)
        keys = typed_keys(mirror, steps)
        r = subprocess.run([*JAX_LLM, "ime", "type", "--model", str(ime_ui_model), "--user-dict", str(user_dict),
                            "--output", str(tmp_path / "out.txt")], input=keys if keys.endswith("\n") else keys + "\n",
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout == MOBY + "\n" and (tmp_path / "out.txt").read_text() == MOBY + "\n"
        assert UserDict(user_dict).words == mirror_dict.words  # it learnt what the mirror learnt
        if session == 1:
            assert "Ishmael" in spelled(steps) and "ishmael" in UserDict(user_dict).words
        else:
            assert spelled(steps) == []  # every word spelled or picked before is now offered
            ishmael = next(s for s in steps if s[0] == "Ishmael")
            assert ishmael[1].startswith("Is") and "ishmael" in ishmael[2]
        counts.append(len(keys))
        print(f"\nMoby-Dick, first two sentences, pipe session {session}: {len(keys)} keys for {len(MOBY)} "
              f"characters ({len(keys) / len(MOBY):.2f} keys a character; words spelled: {', '.join(spelled(steps))})")
    assert counts[1] < counts[0] < len(MOBY)


def test_moby_dick_in_the_page(browser, start_ime_server, ime_predictor, tmp_path):
    user_dict = tmp_path / "server-dict.json"
    server = start_ime_server("--user-dict", str(user_dict))
    mirror, mirror_dict = mirror_of(ime_predictor, user_dict, tmp_path, "mirror")
    steps = plan(mirror, MOBY)
    assert "Ishmael" in spelled(steps)
    with open_page(browser, server.url) as pg:
        for piece, keys, shown in steps:
            if shown:  # the code first: the page shows what the mirror shows, cased as typed
                pg.keyboard.type(keys[:2])
                settled(pg)
                assert [w.lower() for w in candidates(pg)] == shown, piece
                keys = keys[2:]
            pg.keyboard.type(keys)
        rest = typed_keys(mirror, steps)[len("".join(k for _, k, _ in steps)):]
        if rest:
            pg.keyboard.press("Enter")
        settled(pg)
        expect(pg.locator("#status")).to_have_text("")
        assert text(pg) == MOBY
    n_keys = len(typed_keys(mirror, steps))
    print(f"\nMoby-Dick, first two sentences, in the page: {n_keys} keys for {len(MOBY)} characters")
    assert UserDict(user_dict).words == mirror_dict.words and "ishmael" in mirror_dict.words
    with open_page(browser, server.url) as pg:  # the next session: "is" offers ishmael
        pg.keyboard.type("Came")
        pg.keyboard.press("Enter")
        pg.keyboard.type("is")
        settled(pg)
        assert "ishmael" in candidates(pg)[1:]  # offered, below the model's top word
        pg.keyboard.press(str(candidates(pg).index("ishmael") + 1))
        settled(pg)
        assert text(pg).endswith(" ishmael") and UserDict(user_dict).count("ishmael") == 2  # picked: learnt again
        pg.keyboard.press("Backspace")  # undo takes back the word and what it taught
        settled(pg)
        assert not text(pg).endswith("ishmael") and UserDict(user_dict).count("ishmael") == 1
