"""The writer's own words, kept across sessions: a JSON file, `{"format": 1, "words": {"ishmael": 2, ...}}`,
each word (lowercase a-z) with the number of times it was learnt (spelled in full, or picked when it was not
the top candidate) less the times that was undone. `combine.WithUserWords` ranks them beside any model's.

Where: `--user-dict PATH`, else `$XDG_DATA_HOME/jax-llm/user-dict.json` (`~/.local/share/...` without
XDG_DATA_HOME). Every change is one locked read-modify-write: under `fcntl.flock` on `PATH.lock` the file
is read again (another session's words are kept), changed, written to a temporary file in the same folder
and renamed over it (`os.replace`), so a reader never sees half a file and two sessions lose nothing. A file
that is not such a dictionary is refused with one line naming it, and never rewritten.
"""

import fcntl
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

from jax_llm.errors import UserError
from jax_llm.ime.language.codes import LETTERS, word_code
from jax_llm.ime.modelfiles import json_type, unreadable

FORMAT = 1
MAX_WORD_CHARS = 64


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "jax-llm" / "user-dict.json"


def write_atomic(path: Path, text: str) -> None:
    """`text` into `path` through a temporary file beside it and a rename: a reader sees the old file or
    the new one, never half of one. The file keeps its permissions (a new one gets the umask's)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if mode is not None:
                os.fchmod(fd, mode)
            f.write(text)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def valid_word(word) -> bool:
    return isinstance(word, str) and 0 < len(word) <= MAX_WORD_CHARS and all(c in LETTERS for c in word)


class UserDict:
    """The dictionary file and its words in memory (`count`, `by_code`), as of the last read or change.
    With `learning` off it is only read: `learn` and `unlearn` do nothing."""

    def __init__(self, path: Path | str | None = None, learning: bool = True):
        self.path = Path(path) if path else default_path()
        self.learning = learning
        self._lock = threading.Lock()  # one change at a time in this process (the server's threads)
        self._set(self.read())

    def read(self) -> dict[str, int]:
        """The words in the file ({} when there is no file yet); a damaged file raises a UserError."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise unreadable(self.path, e, "readable") from None
        fix = "fix it, or move it aside to start an empty dictionary"
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise UserError(f"{unreadable(self.path, e, 'valid JSON')}; {fix}") from None
        words = data.get("words") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(words, dict):
            raise UserError(f"{self.path}: not a user dictionary (expected {{\"format\": {FORMAT}, \"words\": "
                            f"{{...}}}}, got {json_type(data)}); {fix}")
        for word, count in words.items():
            if not valid_word(word) or type(count) is not int or count < 1:
                raise UserError(f"{self.path}: bad entry {word!r}: {count!r} (a word of letters a-z and a count "
                                f"of 1 or more); {fix}")
        return words

    def _set(self, words: dict[str, int]) -> None:
        by_code: dict[str, dict[str, int]] = {}
        for word, count in words.items():
            by_code.setdefault(word_code(word), {})[word] = count
        self.words, self._by_code = words, by_code  # replaced whole: readers on other threads see one or the other

    def count(self, word: str) -> int:
        return self.words.get(word, 0)

    def by_code(self, code: str) -> dict[str, int]:
        """The writer's words with `code` ("fi", "i "), with their counts."""
        return self._by_code.get(code, {})

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def change(self, edit: Callable[[dict[str, int]], None]) -> None:
        """Read the file again, `edit` its words in place, write it back atomically."""
        try:
            with self._locked():
                words = self.read()
                edit(words)
                write_atomic(self.path, json.dumps({"format": FORMAT, "words": dict(sorted(words.items()))}, indent=0))
        except OSError as e:
            raise UserError(f"{self.path}: cannot be written ({e.strerror or e})") from None
        self._set(words)

    def learn(self, word: str) -> bool:
        """Count `word` once more (lowercase a-z); False when learning is off or it is not such a word."""
        if not self.learning or not valid_word(word):
            return False
        self.change(lambda words: words.__setitem__(word, words.get(word, 0) + 1))
        return True

    def unlearn(self, word: str) -> None:
        """Take back one `learn(word)`: the count goes down by one, the word goes at zero."""
        def edit(words):
            if words.get(word, 0) > 1:
                words[word] -= 1
            else:
                words.pop(word, None)

        if self.learning and valid_word(word):
            self.change(edit)

    def forget(self, words: Iterable[str]) -> None:
        """Remove `words` altogether; all must be in the dictionary, or nothing changes."""
        words = list(words)

        def edit(d):
            missing = [w for w in words if w not in d]
            if missing:
                raise UserError(f"not in {self.path}: {', '.join(missing)} (nothing was changed)")
            for w in words:
                d.pop(w, None)

        self.change(edit)


# --- the options of `ime type` and `ime serve`, and `jax-llm ime dict` ---------------------------------

def add_options(p) -> None:
    p.add_argument("--user-dict", type=Path, metavar="PATH",
                   help=f"the user dictionary (default: {default_path()}, from $XDG_DATA_HOME)")
    p.add_argument("--no-learn", action="store_true",
                   help="read the user dictionary but teach it nothing")


def open_for(args) -> UserDict:
    return UserDict(args.user_dict, learning=not args.no_learn)


def add_parser(ime_subparsers) -> None:
    p = ime_subparsers.add_parser("dict", help="list or forget the words of the user dictionary",
                                  description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="dict_command", metavar="COMMAND", required=True)
    q = sub.add_parser("list", help="the words, most used first, with their counts")
    q.add_argument("--user-dict", type=Path, metavar="PATH", help=f"default: {default_path()}")
    q.set_defaults(func=cmd_list)
    q = sub.add_parser("forget", help="remove words from the user dictionary")
    q.add_argument("words", nargs="+", metavar="WORD")
    q.add_argument("--user-dict", type=Path, metavar="PATH", help=f"default: {default_path()}")
    q.set_defaults(func=cmd_forget)


def cmd_list(args) -> int:
    d = UserDict(args.user_dict, learning=False)
    for word, count in sorted(d.words.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{count:>6}  {word}")
    if not d.words:
        print(f"jax-llm: no words in {d.path} yet", file=sys.stderr)
    return 0


def cmd_forget(args) -> int:
    d = UserDict(args.user_dict)
    d.forget(w.lower() for w in args.words)
    print(f"forgot {len(args.words)} word{'s' if len(args.words) > 1 else ''} ({', '.join(args.words)}) in {d.path}")
    return 0
