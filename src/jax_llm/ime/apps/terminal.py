"""`jax-llm ime type`: the input method as you type it, in a terminal or over a pipe.

The keys are the typing language (`language.keys`; the web page of `jax-llm ime serve` speaks the same).
Words spelled in full, and words picked when they were not the top candidate, are learnt in the user dictionary (`apps/userdict.py`) and offered
in later sessions; `--no-learn` only reads it. A model trained with `--lookahead K` may replace a word
accepted by typing on once the next codes arrive (the composer's revisions); the end of a phrase (. , ; : ! ?,
Enter, Tab, and Ctrl-D) converts its words again together; the status line says what either replaced.

Over a pipe (stdin not a terminal) each input line goes through the same keys and its text is printed as
one line, so `echo "Fi, tw." | jax-llm ime type` prints "First, two."; a key that does nothing there (a
digit with no such candidate, a key the language does not have) stops with one line naming the line and
column. `--output FILE` keeps the text typed (written when the session ends, also after an error).
"""

import argparse
import os
import re
import shutil
import textwrap
import sys
from pathlib import Path

from jax_llm.errors import UserError
from jax_llm.ime.apps import userdict
from jax_llm.ime.apps.composer import Composer, cased
from jax_llm.ime.language.keys import ENTER, IN_SHORT, NEXT_PAGE, SPELL
from jax_llm.ime.predictor import load_predictor
from jax_llm.ime.combine import WithUserWords


def run_pipe(composer: Composer, stdin, stdout) -> None:
    """Non-interactive: every line of `stdin` is typed as keys; its text is written as one line."""
    for lineno, raw in enumerate(stdin, 1):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        for col, ch in enumerate(line, 1):
            problem = composer.key(ch)
            if problem:
                raise UserError(f"stdin line {lineno}, column {col}: {problem}")
        composer.end_phrase()  # the line's end: Enter, which ends the phrase
        stdout.write(composer.line() + "\n")
        stdout.flush()
        composer.key("\n")


# --- the interactive terminal -------------------------------------------------------------------------

REVERSE, DIM, RESET = "\x1b[7m", "\x1b[2m", "\x1b[0m"
_ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)?", re.S)
BANNER = textwrap.fill(IN_SHORT + " Enter on nothing starts a new line; Ctrl-C quits.", 100).replace("\n", "\r\n") + "\r\n"
HELP = f"space/Enter accept | 1-9 pick | {NEXT_PAGE} more | {SPELL}word spell | Bksp undo | Ctrl-D done"  # 80 columns
SPELLING = "spelling a word: letters, digits, ' -; space, Enter or Tab ends it; Bksp erases"


def _fit_left(text: str, width: int) -> str:
    """The end of `text`, at most `width` characters (what you type is at the end)."""
    return text if len(text) <= width else "..." + text[len(text) - width + 3:]


def render(composer: Composer, width: int, message: str = "") -> tuple[str, str, int]:
    """The two screen lines (sentence, candidates) with escape codes, and the cursor column on line 1."""
    pending = composer.pending()
    current = pending.lstrip(" ")
    plain = _fit_left(composer.line() + pending, width - 3)
    cut = max(0, len(plain) - len(current))
    styled = (REVERSE if composer.complete else DIM) + current + RESET if current else ""
    line1 = "> " + plain[:cut] + styled
    if message:
        line2 = message
    elif composer.complete:
        numbered = "  ".join(f"{i} {cased(w, composer.case)}" for i, (w, _) in enumerate(composer.shown(), 1))
        line2 = f"{composer.typed.strip()}: " + (numbered or f"no known word, {composer.prediction} is kept")
        if composer.pages():  # in front, where a narrow terminal does not cut it
            line2 = f"page {composer.page + 1} {NEXT_PAGE}  {line2}"
    else:
        line2 = SPELLING if composer.spelling is not None else HELP
    if composer.revised and not message:  # a lookahead model replaced a word just now: until the next key
        line2 = "revised " + ", ".join(f"{old} -> {new}" for old, new in composer.revised) + " | " + line2
    return line1, line2[: width - 1], 2 + len(plain)


def _draw(out, composer: Composer, message: str = "") -> None:
    width = max(20, shutil.get_terminal_size((80, 24)).columns)
    line1, line2, col = render(composer, width, message)
    # From the start of the sentence line: clear below, draw both lines, go back up to the cursor column.
    out.write(f"\r\x1b[J{line1}\r\n{DIM}{line2}{RESET}\x1b[A\r" + (f"\x1b[{col}C" if col else ""))
    out.flush()


def run_terminal(composer: Composer, fd: int, out) -> None:
    """Raw-mode session on terminal `fd` until Ctrl-D (accepts what is typed) or Ctrl-C."""
    import termios  # here, not at the top: Unix only, and the CLI imports this module everywhere
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        out.write(BANNER)
        _draw(out, composer)
        while True:
            data = os.read(fd, 256)
            if not data:
                break
            text = _ESCAPE_SEQUENCE.sub("", data.decode("utf-8", errors="replace"))  # arrows, Esc: ignored
            message, quit_ = "", None
            for ch in text:
                if ch in ("\x03", "\x04"):  # Ctrl-C leaves the word being typed, Ctrl-D accepts it
                    quit_ = ch
                    break
                new_line = ch in ENTER and not composer.typed and composer.spelling is None
                try:
                    problem = composer.key(ch)
                except UserError as e:  # the user dictionary could not be written: say so, keep typing
                    problem = str(e)
                if new_line and composer.text().endswith("\n"):  # keep the line on screen, as converted
                    done = composer.text()[:-1].rsplit("\n", 1)[-1]
                    out.write(f"\r\x1b[J> {done}\r\n")
                if problem:
                    message = problem
                    out.write("\a")
            if quit_ == "\x04":
                composer.end_phrase()
            if quit_:
                break
            _draw(out, composer, message)
        out.write("\r\x1b[J" + (f"> {composer.line()}\r\n" if composer.line() else ""))
        out.flush()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def type_command(args) -> int:
    user = userdict.open_for(args)  # a damaged dictionary is refused before the model loads
    if args.output is not None and (args.output.is_dir() or not args.output.parent.is_dir()):
        raise UserError(f"--output {args.output}: a directory, or in a folder that does not exist")
    composer = Composer(WithUserWords(load_predictor(args.model), user), learner=user)
    try:
        if sys.stdin.isatty():
            run_terminal(composer, sys.stdin.fileno(), sys.stdout)
        else:
            run_pipe(composer, sys.stdin.buffer, sys.stdout)
    finally:
        if args.output is not None:
            text = composer.text()
            try:
                userdict.write_atomic(args.output, text if not text or text.endswith("\n") else text + "\n")
            except OSError as e:
                raise UserError(f"--output {args.output}: cannot be written ({e.strerror or e})") from None
    return 0


def add_parser(ime_subparsers) -> None:
    p = ime_subparsers.add_parser(
        "type", help="type codes, see words as you type (terminal; or codes on stdin, words on stdout)",
        description=__doc__ + "\n" + textwrap.fill(IN_SHORT, 100), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="kn",
                   help="model directory from `jax-llm ime train-ngram`, or kn/backoff (default: kn, "
                        "trained on shakespeare once and cached)")
    p.add_argument("--output", type=Path, metavar="FILE", help="also write the text typed to FILE")
    userdict.add_options(p)
    p.set_defaults(func=type_command)
