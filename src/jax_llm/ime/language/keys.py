"""The typing language of the input method, defined once: its keys here, what they do in `apps.composer`
(the terminal, `ime convert`, /api/convert) and, from the constants the server sends it, in the page's
`apps/static/ime.js`; the whole language is described in docs/ime.md ("The typing language").

`IN_SHORT` is the summary that the commands' help and the terminal's banner print.

What a word costs, for the keystroke-savings figure (`word_keys`): its code, 2 keys (a capital is one key:
Shift is not counted); to confirm it, none for the top candidate, else one digit after one `>` per page
of nine before its own; or, spelled in full when that is cheaper or it is not offered, `/`, its letters
and the key that ends it (one less when a punctuation mark ends it). Other keys cost one each.
"""

from collections.abc import Sequence

from jax_llm.ime.language.codes import LETTERS  # noqa: F401  (a key of the language: composer takes it from here)

IN_SHORT = ("The keys: two letters a word (a letter and a space, or the end, for a one-letter word); a capital "
            "first letter capitalises it; typing on, space or Enter accepts the word shown; 1-9 pick, > shows the "
            "next nine, /word spells a word in full; . , ; : ! ? ' \" ( ) - and digits pass through with English "
            "spacing; . , ; : ! ? Enter and Tab end a phrase, whose words typed on are then converted again together; "
            "Backspace takes back a letter or the last word (docs/ime.md: the typing language).")

PAGE_SIZE = 9  # the digits 1-9 pick among the nine candidates shown
SPELL = "/"  # spell the next word in full (a key no code and no punctuation uses)
NEXT_PAGE = ">"  # the code's next nine candidates; after the last page, the first again
PUNCTUATION = ".,;:!?'\"()-"  # pass through as typed, with English spacing
DIGITS = "0123456789"  # pick while candidates are shown, else pass through
SPELL_INSIDE = "'-"  # besides letters and digits, a spelled word may hold these ("don't", "Moby-Dick")
GLUE_BEFORE = ".,;:!?)"  # no space before these
QUOTES = "'\""  # attach to the words they enclose: odd ones open, even ones close
PHRASE_END = ".,;:!?"  # besides passing through, end a phrase: its words are converted together
CONVERT = "\t"  # Tab: ends a phrase without a mark (and the word being typed, as Enter does)
PHRASE_WORDS = 64  # most words of a phrase converted together: the last ones of a longer phrase
BACKSPACE = ("\x7f", "\b")
ENTER = ("\r", "\n")
CONTEXT_WORDS = 500  # most recent words sent to the model
CODE_KEYS = 2


def page_keys() -> dict:
    """The constants the page's script needs, by their names here (sent in GET /api/info)."""
    return {name: globals()[name] for name in ("LETTERS", "PAGE_SIZE", "SPELL", "NEXT_PAGE", "PUNCTUATION", "DIGITS",
                                                "SPELL_INSIDE", "GLUE_BEFORE", "QUOTES", "CONTEXT_WORDS", "PHRASE_END",
                                                "CONVERT", "PHRASE_WORDS")}


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
