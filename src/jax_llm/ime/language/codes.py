"""Text -> words -> two-character codes, exactly as the published FTCIM study defines them.

A word is typed as its first two letters; a one-letter word as that letter plus a space. So the input
vocabulary is fixed: 26 one-letter codes ("a ".."z ") and 26*26 two-letter codes ("aa".."zz") = 702.
"""

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jax_llm.errors import UserError

if TYPE_CHECKING:
    import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"
CODES: tuple[str, ...] = tuple(a + " " for a in LETTERS) + tuple(a + b for a in LETTERS for b in LETTERS)
NUM_CODES = len(CODES)  # 702
CODE_IDS = {c: i for i, c in enumerate(CODES)}
_NOT_AZ = re.compile(r"[^a-z]+")


def normalize(text: str) -> list[str]:
    """The study's tokenisation: lowercase, every non a-z character becomes a space, split."""
    return _NOT_AZ.sub(" ", text.lower()).split()


def word_code(word: str) -> str:
    """First two letters, or the letter plus a space for a one-letter word."""
    return word[:2] if len(word) >= 2 else word + " "


def code_id(code: str) -> int:
    """Dense id in 0..701 (one-letter codes first)."""
    try:
        return CODE_IDS[code]
    except KeyError:
        raise UserError(f"not a code: {code!r} (a code is two letters a-z, or one letter and a space)") from None


def code_ids(words: Sequence[str], no_code: int = -1) -> "np.ndarray":
    """Code id of each word (a code is its own word: "ab", "a "); `no_code` for a string that has no code
    (not a-z). Vectorised: the study's corpora have a million words, and only distinct two-character
    prefixes are looked up."""
    import numpy as np  # here, not at the top: the CLI imports this module to build its parser

    if len(words) < 256:  # a keystroke's few words: plain lookups beat sorting
        return np.array([CODE_IDS.get(word_code(w), no_code) for w in words], np.int64)
    prefix, inverse = np.unique(np.array(words, dtype=str).astype("U2"), return_inverse=True)
    table = np.array([CODE_IDS.get(word_code(p), no_code) if p else no_code for p in prefix.tolist()], np.int64)
    return table[inverse.reshape(-1)]  # a one-character prefix comes only from a one-letter word


def parse_codes(text: str) -> list[str]:
    """Split typed input into codes, online-style, left to right.

    Letters are read in pairs; spaces only separate. A letter followed by a space or by the end of the
    input is a one-letter word's code ("i am" -> ["i ", "am"], "ab c" -> ["ab", "c "]), so a run of
    letters of odd length ends in a one-letter code. Anything other than a-z and spaces (uppercase,
    digits, punctuation, tabs) is rejected with a UserError naming the character and its position,
    and so is input with no code at all.
    """
    codes: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == " ":
            i += 1
            continue
        if ch not in LETTERS:
            raise UserError(
                f"invalid character {ch!r} at position {i + 1} of {text!r}: codes are lowercase letters a-z "
                "(two per word, one letter + space for a one-letter word), spaces between codes"
            )
        nxt = text[i + 1] if i + 1 < n else " "
        if nxt in LETTERS:
            codes.append(ch + nxt)
            i += 2
        else:
            codes.append(ch + " ")
            i += 1
    if not codes:
        raise UserError(f"no codes in {text!r}: type two letters a-z per word")
    return codes
