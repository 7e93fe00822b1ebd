"""The input method's keys, and what a word costs in them: one definition for the composer (what each key
does, `composer.py`), the help lines, the page (`static/ime.js` mirrors these constants) and the
keystroke-savings figure, which counts keys with `word_keys`.

A word costs:

- its code: 2 keys (two letters; a one-letter word is the letter and space). A capital letter is one
  key like a lowercase one (Shift is not counted);
- to confirm it, none when it is the top candidate (typing on, a punctuation mark, space or Enter accepts
  it), else one digit, after one `>` per page of nine it lies beyond the first;
- spelled in full, when it is not among the candidates or that is cheaper: `/`, its letters, and the space
  or Enter that ends it (a punctuation mark ends it too, and is then one key less).

Other keys cost one each: a punctuation mark, a literal digit, the Enter that ends the text.
"""

from collections.abc import Sequence

PAGE_SIZE = 9  # the digits 1-9 pick among the nine candidates shown
SPELL = "/"  # spell the next word in full (a key no code and no punctuation uses)
NEXT_PAGE = ">"  # the code's next nine candidates; after the last page, the first again
PUNCTUATION = ".,;:!?'\"()-"  # pass through as typed, with English spacing
DIGITS = "0123456789"  # pick while candidates are shown, else pass through
SPELL_INSIDE = "'-"  # besides letters and digits, a spelled word may hold these ("don't", "Moby-Dick")
CODE_KEYS = 2


def pick_keys(rank: int) -> int:
    """Keys, after the code, that confirm the candidate at 1-based `rank`: none for the first, else one
    `>` per page before its own and one digit."""
    if rank < 1:
        raise ValueError(f"rank is 1-based, got {rank}")
    return 0 if rank == 1 else (rank - 1) // PAGE_SIZE + 1


def spell_keys(word: str) -> int:
    """`/`, the word's letters and the key that ends it."""
    return len(word) + 2


def word_keys(word: str, ranked: Sequence[str]) -> tuple[int, str]:
    """The cheapest way to enter `word` when its code shows the candidates `ranked` (best first, the
    model's lowercase words): (keys, "pick") with the code and its picking keys, or (keys, "spell")."""
    spelled = spell_keys(word)
    try:
        picked = CODE_KEYS + pick_keys(list(ranked).index(word.lower()) + 1)
    except ValueError:  # not among the candidates
        return spelled, "spell"
    return (picked, "pick") if picked <= spelled else (spelled, "spell")
