"""`jax-llm ime type` as a person uses it: over a pipe (scripted) and in a real pseudo-terminal (pexpect);
capitals, punctuation, spelling in full, `--output`, and the user dictionary across sessions."""

import subprocess

import pexpect
import pytest

from helpers import JAX_LLM, PHRASE
from jax_llm.ime.apps.userdict import UserDict
from jax_llm.ime.combine import WithUserWords



def top(predictor, code: str, context: list[str], n: int = 1) -> str:
    """The n-th candidate (1-based) the model ranks for `code` after `context`."""
    return predictor.candidates(code, context, 9)[n - 1][0]


def type_pipe(model, text: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*JAX_LLM, "ime", "type", "--model", str(model), *map(str, args)], input=text,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def user_dict(tmp_path):
    return tmp_path / "user-dict.json"


def test_pipe_converts_each_line_and_a_digit_picks(ime_ui_model, ime_predictor, user_dict):
    r = type_pipe(ime_ui_model, "fitwchinme\nfi tw3 ch\n\ni am\n", "--user-dict", user_dict)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == PHRASE
    context = PHRASE.split() + ["first"]
    third = top(ime_predictor, "tw", context, 3)  # the digit 3 after "tw" picks the third candidate
    assert third != top(ime_predictor, "tw", context)
    ch = top(ime_predictor, "ch", context + [third])
    assert lines[1] == f"first {third} {ch}"  # accepted words are the context across lines
    assert lines[2] == ""
    context += [third, ch]
    i_word = top(ime_predictor, "i ", context)
    assert lines[3] == f"{i_word} {top(ime_predictor, 'am', context + [i_word])}"
    assert len(lines) == 4
    assert UserDict(user_dict).words == {third: 1}  # the word picked below the top is learnt


def test_pipe_backspace_and_unknown_codes(ime_ui_model, user_dict):
    # fitw, then four Backspaces: "w", "t", the accepted "first" (back to its code "fi"), "i"; then "i" again
    r = type_pipe(ime_ui_model, "fitw\x7f\x7f\x7f\x7fi\nqx\n", "--user-dict", user_dict)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["first", "[qx?]"]  # a code with no known word shows a placeholder


def test_pipe_rejects_keys_that_do_nothing(ime_ui_model, user_dict):
    for text, where in [("fitw\nfi@\n", "line 2, column 3"), ("f5\n", "line 1, column 2"),
                        ("fi0\n", "line 1, column 3"), ("fi\x7f\x7f\x7f\n", "line 1, column 5"),
                        ("x>\n", "line 1, column 2"), ("/ab#\n", "line 1, column 4")]:
        r = type_pipe(ime_ui_model, text, "--user-dict", user_dict)
        assert r.returncode == 2, (text, r.stderr)
        assert where in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_pipe_capitals_punctuation_digits_and_output(ime_ui_model, ime_predictor, user_dict, tmp_path):
    """Uppercase and punctuation, refused before this language, now write a real sentence."""
    out = tmp_path / "typed.txt"
    r = type_pipe(ime_ui_model, 'Fitw, "chinme" (FI) - i  1851!\nTh/Zarathustra.\n', "--user-dict", user_dict,
                  "--output", out)
    assert r.returncode == 0, r.stderr
    words = ["first", "two", "character", "input", "method"]
    fi = top(ime_predictor, "fi", words)
    i_word = top(ime_predictor, "i ", [*words, fi])
    th = top(ime_predictor, "th", [*words, fi, i_word])
    want = [f'First two, "character input method" ({fi.upper()}) - {i_word} 1851!', f"{th.capitalize()} Zarathustra."]
    assert r.stdout.splitlines() == want
    assert out.read_text() == "\n".join(want) + "\n"  # --output keeps the text, the screen aside
    assert UserDict(user_dict).words == {"zarathustra": 1}


def test_output_keeps_what_was_typed_before_an_error(ime_ui_model, user_dict, tmp_path):
    out = tmp_path / "typed.txt"
    r = type_pipe(ime_ui_model, "fitw\nch@\n", "--user-dict", user_dict, "--output", out)
    assert r.returncode == 2 and "line 2, column 3" in r.stderr
    assert out.read_text().startswith("first two\n")
    r = type_pipe(ime_ui_model, "fi\n", "--output", tmp_path / "no" / "such" / "dir.txt")
    assert r.returncode == 2 and "--output" in r.stderr and r.stderr.count("\n") == 1


def test_a_word_spelled_once_is_offered_in_the_next_session_and_undo_takes_it_back(ime_ui_model, ime_predictor,
                                                                                   user_dict):
    assert "ishmael" not in [w for w, _ in ime_predictor.candidates("is", ["first"], 1000)]
    r = type_pipe(ime_ui_model, "Fi/Ishmael.\n", "--user-dict", user_dict)
    assert r.returncode == 0 and r.stdout == "First Ishmael.\n", r.stderr
    assert UserDict(user_dict).words == {"ishmael": 1}
    ranked = [w for w, _ in WithUserWords(ime_predictor, UserDict(user_dict)).candidates("is", ["first"], 9)]
    assert "ishmael" in ranked[1:]
    digit = ranked.index("ishmael") + 1
    r = type_pipe(ime_ui_model, f"FiIs{digit}.\n", "--user-dict", user_dict)  # the next session: no spelling
    assert r.returncode == 0 and r.stdout == "First Ishmael.\n", r.stderr
    # picked below the top, so counted again; then an undo (Backspace over it) takes that back
    assert UserDict(user_dict).words == {"ishmael": 2}
    r = type_pipe(ime_ui_model, f"FiIs{digit}\x7f\x7f\x7f.\n", "--user-dict", user_dict)
    assert r.returncode == 0 and r.stdout == "First.\n", r.stderr
    assert UserDict(user_dict).words == {"ishmael": 2}
    r = type_pipe(ime_ui_model, "/Queequeg\n", "--user-dict", user_dict, "--no-learn")
    assert r.returncode == 0 and r.stdout == "Queequeg\n"
    assert UserDict(user_dict).words == {"ishmael": 2}


def test_a_damaged_user_dictionary_stops_type_before_anything(ime_ui_model, user_dict):
    user_dict.write_text('{"format": 1, "words": {"ishmael": -1}}')
    r = type_pipe(ime_ui_model, "fitw\n", "--user-dict", user_dict)
    assert r.returncode == 2 and str(user_dict) in r.stderr and r.stderr.count("\n") == 1 and not r.stdout
    assert user_dict.read_text() == '{"format": 1, "words": {"ishmael": -1}}'


def test_terminal_session_in_a_pty(ime_ui_model, ime_predictor, user_dict):
    child = pexpect.spawn(JAX_LLM[0], [*JAX_LLM[1:], "ime", "type", "--model", str(ime_ui_model), "--user-dict",
                                       str(user_dict)], encoding="utf-8", dimensions=(24, 200), timeout=60)
    try:
        child.expect_exact("> more | /word spell")  # the help line names the new keys
        child.expect_exact("Ctrl-D done")
        child.send("fi")  # the second letter shows the prediction and the numbered candidates
        fi = [w for w, _ in ime_predictor.candidates("fi", [], 9)]
        child.expect_exact("fi: " + "  ".join(f"{i} {w}" for i, w in enumerate(fi[:3], 1)))
        child.send("tw")  # typing on accepts "first"
        tw = [w for w, _ in ime_predictor.candidates("tw", ["first"], 9)]
        child.expect_exact(f"tw: 1 {tw[0]}  2 {tw[1]}")
        child.send("2")  # a digit picks
        child.send("ch")
        ch = top(ime_predictor, "ch", ["first", tw[1]])
        child.expect_exact(f"ch: 1 {ch}")
        child.send(" ")  # space accepts
        child.expect_exact("\r\n\x1b[2mspace/Enter accept")  # back to the help line: no code pending
        child.send("\x7f")  # Backspace takes back the accepted word and shows its candidates again
        child.expect_exact(f"ch: 1 {ch}")
        child.send("\r")  # Enter accepts the top word
        child.send("th")
        th = [w for w, _ in ime_predictor.candidates("th", ["first", tw[1], ch], 40)]
        assert len(th) > 18
        child.expect_exact(f"page 1 >  th: 1 {th[0]}  2 {th[1]}")
        child.send(">")  # the next nine
        child.expect_exact(f"page 2 >  th: 1 {th[9]}  2 {th[10]}")
        child.send("2, /Ishm")  # picks the eleventh; a comma; spelling shows its own help line
        child.expect_exact("spelling a word")
        child.send("ael.")  # a mark ends the spelled word
        child.expect_exact(f"> first {tw[1]} {ch} {th[10]}, Ishmael.")
        child.send("\x04")  # Ctrl-D: done
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    # the last thing drawn: the sentence line, cleared below, without the candidate line
    assert child.before.endswith(f"\r\x1b[J> first {tw[1]} {ch} {th[10]}, Ishmael.\r\n")
    assert UserDict(user_dict).words == {tw[1]: 1, th[10]: 1, "ishmael": 1}


def test_a_lookahead_model_revises_the_word_before_in_the_pipe_and_on_screen(ime_lookahead_model, revision_case,
                                                                             ime_lookahead_predictor, user_dict):
    case = revision_case
    r = type_pipe(ime_lookahead_model, case.keys + "\n", "--user-dict", user_dict)
    assert r.returncode == 0, r.stderr
    # the end of the line ends the phrase: its words converted together (after the revisions as typed)
    assert r.stdout == " ".join(ime_lookahead_predictor.convert_phrase(case.codes, [])) + "\n"
    i, old, new = case.revisions[0]  # the first: typing code i replaces word i-1
    child = pexpect.spawn(JAX_LLM[0], [*JAX_LLM[1:], "ime", "type", "--model", str(ime_lookahead_model), "--user-dict",
                                       str(user_dict)], encoding="utf-8", dimensions=(24, 200), timeout=60)
    try:
        child.expect_exact("Ctrl-D done")
        child.send("".join(case.codes[:i + 1]))
        child.expect_exact(f"revised {old} -> {new} | ")  # in front of the candidates, until the next key
        child.expect_exact(f"{case.codes[i].strip()}: 1 {case.shown[i]}")
        child.send(" ")  # the next key: gone
        child.expect_exact("\r\n\x1b[2mspace/Enter accept")
        child.send("\x04")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0  # Ctrl-D ends the phrase too
    assert child.before.endswith(f"\r\x1b[J> {' '.join(ime_lookahead_predictor.convert_phrase(case.codes[:i + 1], []))}\r\n")
