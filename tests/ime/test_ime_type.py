"""`jax-llm ime type` as a person uses it: over a pipe (scripted) and in a real pseudo-terminal (pexpect)."""

import subprocess
import sys

import pexpect

PHRASE = "first two character input method"  # spliced into the test model's corpus (conftest.py)
JAX_LLM = [sys.executable, "-m", "jax_llm"]


def top(predictor, code: str, context: list[str], n: int = 1) -> str:
    """The n-th candidate (1-based) the model ranks for `code` after `context`."""
    return predictor.candidates(code, context, 9)[n - 1][0]


def type_pipe(model, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([*JAX_LLM, "ime", "type", "--model", str(model)], input=text, capture_output=True,
                          text=True, timeout=120)


def test_pipe_converts_each_line_and_a_digit_picks(ime_ui_model, ime_predictor):
    r = type_pipe(ime_ui_model, "fitwchinme\nfi tw3 ch\n\ni am\n")
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


def test_pipe_backspace_and_unknown_codes(ime_ui_model):
    # fitw, then four Backspaces: "w", "t", the accepted "first" (back to its code "fi"), "i"; then "i" again
    r = type_pipe(ime_ui_model, "fitw\x7f\x7f\x7f\x7fi\nqx\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["first", "[qx?]"]  # a code with no known word shows a placeholder


def test_pipe_rejects_keys_that_do_nothing(ime_ui_model):
    for text, where in [("fitw\nfiX\n", "line 2, column 3"), ("5fi\n", "line 1, column 1"),
                        ("fi!\n", "line 1, column 3"), ("fi\x7f\x7f\x7f\n", "line 1, column 5")]:
        r = type_pipe(ime_ui_model, text)
        assert r.returncode == 2, (text, r.stderr)
        assert where in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_terminal_session_in_a_pty(ime_ui_model, ime_predictor):
    child = pexpect.spawn(JAX_LLM[0], [*JAX_LLM[1:], "ime", "type", "--model", str(ime_ui_model)],
                          encoding="utf-8", dimensions=(24, 160), timeout=60)
    try:
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
        child.send("\x04")  # Ctrl-D: done
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    # the last thing drawn: the sentence line, cleared below, without the candidate line
    assert child.before.endswith(f"\r\x1b[J> first {tw[1]} {ch}\r\n")
