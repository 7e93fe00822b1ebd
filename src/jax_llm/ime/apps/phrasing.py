"""Phrase conversion in the composer: which confirmed tokens make the open phrase, and how they map to the
positions of `Predictor.convert_phrase` (the page's ime.js does the same, key for key).

The open phrase is the tokens after the last closed token (one a conversion already saw) or new line, at
most `PHRASE_WORDS` positions of them (a longer phrase: its last ones). Each position is one model word,
in order (`Token.model_words`):

- a word typed as a code is one position with its code; accepted by typing on (`Token.revisable`), the
  conversion may replace it; picked with a digit, it is `fixed` to its word;
- a spelled word is as many positions as it has model words (`/Ishmael's`: "ishmael", "s"), each with its
  own code (`word_code`) and `fixed` to that word; `/42` has none;
- marks and digits are no position: the phrase's words are read as if they were not there, as the model
  reads the context (`Composer.context`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from jax_llm.ime.language.codes import word_code
from jax_llm.ime.language.keys import PHRASE_WORDS


@dataclass
class Phrase:
    start: int  # index of its first token
    codes: list[str] = field(default_factory=list)
    fixed: dict[int, str] = field(default_factory=dict)  # position -> word picked or spelled: kept
    open: dict[int, int] = field(default_factory=dict)  # position -> index of a token the conversion may replace


def open_phrase(tokens: Sequence) -> Phrase:
    """The open phrase at the end of `tokens` and its positions."""
    start, n = len(tokens), 0
    while start > 0 and not tokens[start - 1].closed and tokens[start - 1].kind != "newline":
        n += len(tokens[start - 1].model_words())
        if n > PHRASE_WORDS:
            break
        start -= 1
    phrase = Phrase(start)
    for i in range(start, len(tokens)):
        t = tokens[i]
        if t.revisable():
            phrase.open[len(phrase.codes)] = i
        for w in t.model_words():
            if not t.revisable():
                phrase.fixed[len(phrase.codes)] = w
            phrase.codes.append(t.code if t.kind == "word" else word_code(w))
    return phrase
