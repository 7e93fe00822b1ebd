"""`jax-llm ime type`: the input method as you type it, in a terminal or over a pipe.

Keys (the web page at `jax-llm ime serve` follows the same rules, in `static/ime.js`):

- a letter: the first or second letter of a code. Every second letter shows the predicted word and a
  numbered candidate list. Typing on (the next code's first letter) accepts the predicted word.
- space: after one letter, completes a one-letter word's code ("i" + space); after a full code, accepts
  the top word. Enter accepts too (a lone letter is then a one-letter code); Enter on nothing ends the line.
- 1-9: picks that candidate. Backspace: removes a typed letter, or takes back the last accepted word and
  shows its candidates again.

Accepted words are the context of the next prediction (the confirmed-words setting), across lines.
Over a pipe (stdin not a terminal) each input line goes through the same keys and its words are printed
as one line, so `echo fitwchinme | jax-llm ime type` prints the conversion; a key that does nothing
(a digit with no candidate, an uppercase letter, punctuation) stops with a one-line error naming the
line and column.
"""

import argparse
import os
import re
import shutil
import sys

from jax_llm.errors import UserError
from jax_llm.ime.codes import LETTERS
from jax_llm.ime.predictor import Predictor, context_word, load_predictor, shown_word

CANDIDATES = 9  # the digits 1-9 pick
CONTEXT_WORDS = 500  # most recent accepted words sent to the model
BACKSPACE = ("\x7f", "\b")
ENTER = ("\r", "\n")


class Session:
    """The typing state: accepted words (with their codes, for undo) and the code being typed."""

    def __init__(self, predictor: Predictor, k: int = CANDIDATES):
        self.predictor, self.k = predictor, k
        self.words: list[str] = []  # accepted, as shown (a code with no known word shows its placeholder)
        self.codes: list[str] = []  # the code each accepted word was typed with
        self.line_start = 0  # index in `words` where the current line begins
        self.typed = ""  # letters of the current code so far: "", "f", "fi" or "f "
        self.candidates: list[tuple[str, float]] = []

    @property
    def complete(self) -> bool:
        return len(self.typed) == 2

    @property
    def prediction(self) -> str:
        """The word the current full code would give now ("" while no full code is typed)."""
        return shown_word(self.typed, self.candidates) if self.complete else ""

    def context(self) -> list[str]:
        """Confirmed words, oldest first; an unknown word stands as its code letters (`context_word`)."""
        start = max(0, len(self.words) - CONTEXT_WORDS)
        return [context_word(w, c) for w, c in zip(self.words[start:], self.codes[start:], strict=True)]

    def line(self) -> list[str]:
        return self.words[self.line_start:]

    def key(self, ch: str) -> str | None:
        """Apply one key. Returns None, or a message saying why the key did nothing."""
        if ch in LETTERS:
            if self.complete:
                self.accept()
            self._type(ch)
        elif ch == " ":
            if self.complete:
                self.accept()
            elif self.typed:
                self._type(" ")
        elif ch in ENTER:
            if self.typed:
                self.finish_code()
            else:
                self.line_start = len(self.words)
        elif ch in BACKSPACE:
            return self.backspace()
        elif ch in "123456789":
            return self.pick(int(ch))
        else:
            return f"{ch!r} is not a key here: codes are lowercase letters a-z, digits 1-9 pick a candidate"
        return None

    def _type(self, ch: str) -> None:
        self.typed += ch
        if self.complete:
            self.candidates = self.predictor.candidates(self.typed, self.context(), self.k)

    def finish_code(self) -> None:
        """End of input for the current code: a lone letter is a one-letter word's code; accept the top."""
        if len(self.typed) == 1:
            self._type(" ")
        if self.complete:
            self.accept()

    def accept(self, word: str | None = None) -> None:
        self.words.append(word if word is not None else self.prediction)
        self.codes.append(self.typed)
        self.typed, self.candidates = "", []

    def pick(self, n: int) -> str | None:
        if not self.complete:
            return f"digit {n} picks nothing: type a full code first"
        if n > len(self.candidates):
            return f"digit {n} picks nothing: {len(self.candidates)} candidates for {self.typed.strip()!r}"
        self.accept(self.candidates[n - 1][0])
        return None

    def backspace(self) -> str | None:
        if self.typed:
            self.typed, self.candidates = self.typed[:-1], []
        elif len(self.words) > self.line_start:
            self.words.pop()
            self._type(self.codes.pop())
        else:
            return "nothing to undo on this line"
        return None


def run_pipe(predictor: Predictor, stdin, stdout) -> None:
    """Non-interactive: every line of `stdin` is typed as keys; its words are written as one line."""
    session = Session(predictor)
    for lineno, raw in enumerate(stdin, 1):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        for col, ch in enumerate(line, 1):
            problem = session.key(ch)
            if problem:
                raise UserError(f"stdin line {lineno}, column {col}: {problem}")
        session.finish_code()
        stdout.write(" ".join(session.line()) + "\n")
        stdout.flush()
        session.line_start = len(session.words)


# --- the interactive terminal -------------------------------------------------------------------------

REVERSE, DIM, RESET = "\x1b[7m", "\x1b[2m", "\x1b[0m"
_ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)?", re.S)
BANNER = ("Type each word as its first two letters, a one-letter word as the letter and space.\r\n"
          "Typing on accepts the shown word; Enter on nothing starts a new line.\r\n")
HELP = "space/Enter accept | 1-9 pick | Backspace undo | Ctrl-D done | Ctrl-C quit"


def _fit_left(text: str, width: int) -> str:
    """The end of `text`, at most `width` characters (what you type is at the end)."""
    return text if len(text) <= width else "..." + text[len(text) - width + 3:]


def render(session: Session, width: int, message: str = "") -> tuple[str, str, int]:
    """The two screen lines (sentence, candidates) with escape codes, and the cursor column on line 1."""
    done = " ".join(session.line())
    current = session.prediction if session.complete else session.typed
    plain = _fit_left(done + (" " if done and current else "") + current, width - 3)
    cut = max(0, len(plain) - len(current))
    styled = (REVERSE if session.complete else DIM) + current + RESET if current else ""
    line1 = "> " + plain[:cut] + styled
    if message:
        line2 = message
    elif session.complete:
        numbered = "  ".join(f"{i} {w}" for i, (w, _) in enumerate(session.candidates, 1))
        line2 = f"{session.typed.strip()}: " + (numbered or f"no known word, {session.prediction} is kept")
    else:
        line2 = HELP
    return line1, line2[: width - 1], 2 + len(plain)


def _draw(out, session: Session, message: str = "") -> None:
    width = max(20, shutil.get_terminal_size((80, 24)).columns)
    line1, line2, col = render(session, width, message)
    # From the start of the sentence line: clear below, draw both lines, go back up to the cursor column.
    out.write(f"\r\x1b[J{line1}\r\n{DIM}{line2}{RESET}\x1b[A\r" + (f"\x1b[{col}C" if col else ""))
    out.flush()


def run_terminal(predictor: Predictor, fd: int, out) -> list[str]:
    """Raw-mode session on terminal `fd` until Ctrl-D (accepts what is typed) or Ctrl-C. Returns the words."""
    import termios  # here, not at the top: Unix only, and the CLI imports this module everywhere
    import tty

    session = Session(predictor)
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        out.write(BANNER)
        _draw(out, session)
        while True:
            data = os.read(fd, 256)
            if not data:
                break
            text = _ESCAPE_SEQUENCE.sub("", data.decode("utf-8", errors="replace"))  # arrows, Esc: ignored
            message, quit_ = "", None
            for ch in text:
                if ch in ("\x03", "\x04"):  # Ctrl-C leaves the code being typed, Ctrl-D accepts it
                    quit_ = ch
                    break
                if ch in ENTER and not session.typed:  # a new line: keep the finished one on screen
                    out.write(f"\r\x1b[J> {' '.join(session.line())}\r\n")
                problem = session.key(ch)
                if problem:
                    message = problem
                    out.write("\a")
            if quit_ == "\x04":
                session.finish_code()
            if quit_:
                break
            _draw(out, session, message)
        out.write("\r\x1b[J" + (f"> {' '.join(session.line())}\r\n" if session.line() else ""))
        out.flush()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return session.words


def type_command(args) -> int:
    predictor = load_predictor(args.model)
    if sys.stdin.isatty():
        run_terminal(predictor, sys.stdin.fileno(), sys.stdout)
    else:
        run_pipe(predictor, sys.stdin.buffer, sys.stdout)
    return 0


def add_parser(ime_subparsers) -> None:
    p = ime_subparsers.add_parser(
        "type", help="type codes, see words as you type (terminal; or codes on stdin, words on stdout)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="kn",
                   help="model directory from `jax-llm ime train-ngram`, or kn/backoff (default: kn, "
                        "trained on shakespeare once and cached)")
    p.set_defaults(func=type_command)

