"""Typing a real text as a writer would, from the candidates the model shows: each word is picked (by its
number, after `>` for a later page) or spelled in full when that is cheaper or it is not offered, choosing
with `keys.word_keys`, the cost the keystroke-savings figure uses. A mirror `Composer` (the same model and
the same user dictionary as the session driven) is typed along, so the keys follow what that session shows."""

import re

from jax_llm.ime.language.codes import word_code
from jax_llm.ime.apps.composer import Composer
from jax_llm.ime.language.keys import DIGITS, NEXT_PAGE, PAGE_SIZE, PUNCTUATION, SPELL, SPELL_INSIDE, word_keys
from jax_llm.ime.combine import EVERY

MOBY = ("Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my purse, "
        "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery "
        "part of the world.")


def pieces(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+|\S", text)


def plan(mirror: Composer, text: str) -> list[tuple[str, str, list[str]]]:
    """(piece, its keys, the candidates shown after its code) for each piece of `text`, typed into `mirror`.
    The top candidate costs no key: the next piece's first key accepts it (at the end, Enter: `typed_keys`)."""
    out = []
    parts = pieces(text)
    for i, piece in enumerate(parts):
        following = parts[i + 1] if i + 1 < len(parts) else ""
        shown: list[str] = []
        if not piece[0].isalpha():
            keys = (" " if piece in DIGITS and mirror.complete else "") + piece
        else:
            mirror.finish()  # what the first key of this word does to a word still shown
            word = piece.lower()
            ranked = [w for w, _ in mirror.predictor.candidates(word_code(word), mirror.context(), EVERY)]
            _, how = word_keys(word, ranked)
            if how == "pick":
                rank = ranked.index(word)
                keys = piece[:2] if len(piece) > 1 else piece + " "
                if rank:
                    keys += NEXT_PAGE * (rank // PAGE_SIZE) + str(rank % PAGE_SIZE + 1)
            else:
                ends = following and following in PUNCTUATION and following not in SPELL_INSIDE  # ends it itself
                keys = SPELL + piece + ("" if ends else " ")
        for j, ch in enumerate(keys):
            assert mirror.key(ch) is None, (piece, keys, ch)
            if j == 1 and piece[0].isalpha() and not keys.startswith(SPELL):  # the code is complete
                shown = [w for w, _ in mirror.shown()]
        out.append((piece, keys, shown))
    return out


def typed_keys(mirror: Composer, steps) -> str:
    """All the keys of `steps`; and Enter, which accepts the last word if it is still shown."""
    keys = "".join(k for _, k, _ in steps)
    return keys + "\n" if mirror.complete or mirror.spelling is not None else keys
