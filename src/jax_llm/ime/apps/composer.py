"""The typing state of the input method: the composer applies the typing language (its keys and rules:
`language.keys`, docs/ime.md) one key at a time, for `ime type`, `ime convert` and /api/convert.

The model sees the lowercased words only: each word, or a spelled word's letters (`codes.normalize`);
punctuation and digits are not words to it. A word the writer spelled, or picked when it was not the top
candidate, is learnt (`learner.learn`) when a learner is given (`ime type` and `ime serve`). With a model
trained with `--lookahead K`, each complete code first revises the words accepted by typing on just
before it (`_revise`; `revised` lists what the last key changed). The end of a phrase (a mark of
`PHRASE_END`, Enter, Tab, the end of `compose`'s input) converts the words of the phrase again together
(`end_phrase`, `Predictor.convert_phrase`; the phrase and its positions: `phrasing`) and closes it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from jax_llm.ime.language.codes import normalize
from jax_llm.ime.language.keys import (BACKSPACE, CONTEXT_WORDS, CONVERT, DIGITS, ENTER, GLUE_BEFORE, LETTERS,
                                       NEXT_PAGE, PAGE_SIZE, PHRASE_END, PUNCTUATION, QUOTES, SPELL, SPELL_INSIDE)
from jax_llm.ime.predictor import Predictor, context_word, shown_word
from jax_llm.ime.apps.phrasing import open_phrase
from jax_llm.ime.apps.userdict import valid_word


class Learner(Protocol):
    def learn(self, word: str) -> bool:
        """Remember `word` (lowercase a-z); False if it was not learnt."""
        ...

    def unlearn(self, word: str) -> None:
        """Take back one `learn(word)`."""
        ...


@dataclass
class Token:
    """One confirmed piece of text. kind: "word" (typed as a code), "spelled", "mark" (punctuation),
    "digit" or "newline"."""

    text: str  # as shown: "First", "Ishmael", ",", "[xq?]"
    kind: str
    code: str = ""  # a word's code ("fi", "i ")
    case: str = ""  # a word's case: "" as the model has it, "cap" or "upper"
    word: str = ""  # a word's model word (its candidate, or the placeholder of a code with no known word)
    candidates: list = field(default_factory=list)  # a word's candidates when it was confirmed
    learnt: str = ""  # the word this token taught the user dictionary, taken back on undo
    picked: bool = False  # chosen with a digit: the writer's choice, never revised
    closed: bool = False  # in a phrase already converted: never revised or converted again

    def revisable(self) -> bool:
        """A word accepted as the top candidate by typing on, in the open phrase: a lookahead model, or the
        phrase's conversion, may still replace it."""
        return self.kind == "word" and not self.picked and not self.closed

    def model_words(self) -> list[str]:
        if self.kind == "word":
            return [context_word(self.word, self.code)]
        return normalize(self.text) if self.kind == "spelled" else []


def cased(word: str, case: str) -> str:
    if case == "upper":
        return word.upper()
    return word[:1].upper() + word[1:] if case == "cap" else word


def render(tokens: Sequence[Token]) -> str:
    """The text of `tokens`, spaced as English is (docs/ime.md)."""
    out: list[str] = []
    open_quote = {q: False for q in QUOTES}
    glue_next, prev_kind = True, "newline"
    for t in tokens:
        if t.kind == "newline":
            out.append("\n")
            glue_next, prev_kind = True, "newline"
            continue
        glue, glue_after = glue_next, False
        if t.kind == "mark" and t.text in QUOTES:
            open_quote[t.text] = not open_quote[t.text]
            glue_after, glue = open_quote[t.text], glue or not open_quote[t.text]
        elif t.kind == "mark":
            glue, glue_after = glue or t.text in GLUE_BEFORE, t.text == "("
        elif t.kind == "digit":
            glue = glue or prev_kind == "digit"
        out.append(t.text if glue else " " + t.text)
        glue_next, prev_kind = glue_after, t.kind
    return "".join(out)


class Composer:
    """The typing state: the confirmed tokens, and the code (or spelled word) being typed."""

    def __init__(self, predictor: Predictor, learner: Learner | None = None, k: int = PAGE_SIZE):
        self.predictor, self.learner = predictor, learner
        self.k = max(k, PAGE_SIZE) + 1  # candidates asked for at first (one more: is there a next page?)
        self.tokens: list[Token] = []
        self.line_start = 0  # index in `tokens` where the current line begins
        self.typed = ""  # letters of the current code: "", "f", "fi" or "f "
        self.case = ""
        self.spelling: str | None = None  # the word being spelled after `/`
        self.page = 0
        self.candidates: list[tuple[str, float]] = []
        self.revised: list[tuple[str, str]] = []  # (word shown before, word now) replaced by the last key
        self._replaced: list[Token] = []  # the tokens of `revised`, in the same order

    # --- what is shown --------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return len(self.typed) == 2

    @property
    def prediction(self) -> str:
        """The word the current code would give now ("" while no full code is typed)."""
        return cased(shown_word(self.typed, self.candidates), self.case) if self.complete else ""

    def shown(self) -> list[tuple[str, float]]:
        """The candidates on the page shown (the digits 1-9 pick among them)."""
        return self.candidates[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]

    def pages(self) -> bool:
        """Whether `>` shows other candidates."""
        return len(self.candidates) > PAGE_SIZE

    def context(self, end: int | None = None) -> list[str]:
        """The model's words of the tokens before `end` (all of them by default), the last CONTEXT_WORDS."""
        words = [w for t in self.tokens[:end][-CONTEXT_WORDS:] for w in t.model_words()]
        return words[-CONTEXT_WORDS:]

    def text(self) -> str:
        return render(self.tokens)

    def line(self) -> str:
        """The current line's confirmed text."""
        return self.text().rsplit("\n", 1)[-1]

    def pending(self) -> str:
        """What is being typed, as shown after the line: the word the code gives, `/` and the letters
        being spelled, or a lone letter; with the space that would come before it."""
        if self.complete:
            shown = self.prediction
        elif self.spelling is not None:
            shown = SPELL + self.spelling
        else:
            shown = cased(self.typed.strip(), self.case)
        if not shown:
            return ""
        done, spaced = self.line(), render([*self.tokens, Token("x", "word")]).rsplit("\n", 1)[-1]
        return spaced[len(done):-1] + shown

    # --- keys -----------------------------------------------------------------------------------------
    def key(self, ch: str) -> str | None:
        """Apply one key. Returns None, or a message saying why the key did nothing."""
        self.revised, self._replaced = [], []
        if self.spelling is not None:
            return self._spell_key(ch)
        if ch.lower() in LETTERS:
            if self.complete:
                self.accept()
            self._letter(ch)
        elif ch == " ":
            if self.complete:
                self.accept()
            elif self.typed:
                self._complete(" ")
        elif ch in ENTER:
            on_nothing = not self.typed
            self.end_phrase()
            if on_nothing:
                self._add(Token("", "newline"))
                self.line_start = len(self.tokens)
        elif ch == CONVERT:
            self.end_phrase()
        elif ch in BACKSPACE:
            return self.backspace()
        elif ch in DIGITS:
            if self.complete:
                return self.pick(int(ch))
            if self.typed:
                return f"digit {ch} picks nothing: type a second letter, or space for a one-letter word"
            self._add(Token(ch, "digit"))
        elif ch == NEXT_PAGE:
            return self.next_page()
        elif ch == SPELL or ch in PUNCTUATION:
            if ch in PHRASE_END:  # before the mark is added
                self.end_phrase()
            else:
                self.finish()  # a lone letter is a one-letter word's code; a full code accepts its top word
            if ch == SPELL:
                self.spelling = ""
            else:
                self._add(Token(ch, "mark"))
        else:
            return (f"{ch!r} is not a key here: codes are letters, 1-9 pick, {NEXT_PAGE} more candidates, "
                    f"{SPELL} spells a word, {' '.join(PUNCTUATION)} and digits pass through, Tab converts")
        return None

    def _spell_key(self, ch: str) -> str | None:
        if ch.isalnum() or (ch in SPELL_INSIDE and self.spelling):
            self.spelling += ch
        elif ch == " ":
            self.finish()
        elif ch in ENTER or ch == CONVERT:
            self.end_phrase()
        elif ch in BACKSPACE:
            self.spelling = self.spelling[:-1] if self.spelling else None  # on nothing: no longer spelling
        elif ch in PUNCTUATION:
            if ch in PHRASE_END:
                self.end_phrase()
            else:
                self.finish()
            self._add(Token(ch, "mark"))
        else:
            return f"{ch!r} is not part of a word: spell letters and digits; space, Enter or Tab ends the word"
        return None

    def _letter(self, ch: str) -> None:
        if not self.typed:
            self.case = "cap" if ch.isupper() else ""
        elif self.case == "cap" and ch.isupper():
            self.case = "upper"
        self._complete(ch.lower())

    def _complete(self, ch: str) -> None:
        self.typed += ch
        self.page = 0
        if self.complete:
            self._revise()
            self.candidates = self.predictor.candidates(self.typed, self.context(), self.k)

    def _revise(self) -> None:
        """The delayed decision of a lookahead model: the words accepted as the top candidate by typing on
        (not picked with a digit, not spelled) just before the new code, at most K of them and with nothing
        else between, are ranked again with the codes typed after them, oldest first; a word whose top
        candidate changed is replaced, keeping its case. Then the new code is ranked (`_complete`)."""
        end = len(self.tokens)
        start = end
        while end - start < self.predictor.lookahead and start > 0 and self.tokens[start - 1].revisable():
            start -= 1
        for i in range(start, end):
            t = self.tokens[i]
            ahead = [u.code for u in self.tokens[i + 1:]] + [self.typed]
            t.candidates = self.predictor.candidates(t.code, self.context(i), self.k, ahead)
            self._replace(t, shown_word(t.code, t.candidates))

    def _replace(self, t: Token, word: str) -> None:
        """`t` shows the model word `word` now, in its case; a change is reported in `revised`, once per key
        and token (from the word shown before the key)."""
        if word == t.word:
            return
        new = cased(word, t.case)
        for j, u in enumerate(self._replaced):
            if u is t:
                self.revised[j] = (self.revised[j][0], new)
                break
        else:
            self.revised.append((t.text, new))
            self._replaced.append(t)
        t.word, t.text = word, new

    def end_phrase(self) -> None:
        """The end of a phrase (a mark of PHRASE_END, before it is added; Enter; Tab; the end of the input):
        the word being typed is finished, then the words of the open phrase accepted by typing on are
        converted again together, after the words before it, keeping the words picked or spelled
        (`phrasing.open_phrase`); a word whose conversion differs is replaced, keeping its case, and
        reported in `revised`. The phrase is closed: nothing revises or converts its words again."""
        self.finish()
        phrase = open_phrase(self.tokens)
        if phrase.open:
            words = self.predictor.convert_phrase(phrase.codes, self.context(phrase.start), phrase.fixed)
            for j, i in phrase.open.items():
                self._replace(self.tokens[i], words[j])
            at = {id(t): i for i, t in enumerate(self.tokens)}  # in the text's order, as the page shows them
            pairs = sorted(zip(self._replaced, self.revised), key=lambda pair: at[id(pair[0])])
            self._replaced, self.revised = [t for t, _ in pairs], [r for _, r in pairs]
        for t in self.tokens[phrase.start:]:
            t.closed = True

    def finish(self) -> None:
        """End of the word being typed: a spelled word is confirmed; a lone letter is a one-letter word's
        code; a full code accepts its top word."""
        if self.spelling is not None:
            word, self.spelling = self.spelling, None
            if word:
                self._add(Token(word, "spelled"), word)
            return
        if len(self.typed) == 1:
            self._complete(" ")
        if self.complete:
            self.accept()

    def accept(self, rank: int = 0, picked: bool = False) -> None:
        """Confirm the candidate at 0-based `rank` (a word not ranked first is learnt; a `picked` one is never
        revised)."""
        word = shown_word(self.typed, self.candidates[rank:])
        token = Token(cased(word, self.case), "word", self.typed, self.case, word, self.candidates, picked=picked)
        self.typed, self.case, self.candidates, self.page = "", "", [], 0
        self._add(token, word if rank else "")

    def _add(self, token: Token, learn: str = "") -> None:
        self.tokens.append(token)
        if learn and self.learner is not None and valid_word(learn.lower()) and self.learner.learn(learn.lower()):
            token.learnt = learn.lower()

    def pick(self, n: int) -> str | None:
        shown = self.shown()
        if not 1 <= n <= len(shown):
            return f"digit {n} picks nothing: {len(shown)} candidates shown for {self.typed.strip()!r}"
        self.accept(self.page * PAGE_SIZE + n - 1, picked=True)
        return None

    def next_page(self) -> str | None:
        if not self.complete:
            return f"{NEXT_PAGE} shows more candidates: type a full code first"
        if not self.pages():
            return f"all the candidates for {self.typed.strip()!r} are shown"
        self.page += 1
        if len(self.candidates) <= (self.page + 1) * PAGE_SIZE:  # ask for the next page, and one more
            self.candidates = self.predictor.candidates(self.typed, self.context(), (self.page + 2) * PAGE_SIZE + 1)
        if len(self.candidates) <= self.page * PAGE_SIZE:
            self.page = 0
        return None

    def backspace(self) -> str | None:
        """Takes back a typed letter, or the last confirmed item. It never undoes a conversion: after a mark
        that ended a phrase it removes the mark and the converted words stay, closed; a word taken back
        comes back as its code, ranked online, and once confirmed again is in the open phrase."""
        if self.typed:
            self.typed, self.candidates, self.page = self.typed[:-1], [], 0
            self.case = "cap" if self.case and self.typed else ""
        elif len(self.tokens) > self.line_start:
            token = self.tokens.pop()
            if token.learnt and self.learner is not None:
                self.learner.unlearn(token.learnt)
            if token.kind == "word":
                self.typed, self.case = token.code[0], token.case
                self._complete(token.code[1])
            elif token.kind == "spelled":
                self.spelling = token.text
        else:
            return "nothing to undo on this line"
        return None


def check_keys(text: str) -> None:
    """Refuse, before any model is loaded, input that cannot be typed: no key at all, or a character that
    is a key in no state (any letter or digit may be spelled after `/`)."""
    from jax_llm.errors import UserError

    keys = f" {SPELL}{NEXT_PAGE}{PUNCTUATION}{CONVERT}{''.join(ENTER)}{''.join(BACKSPACE)}"
    for i, ch in enumerate(text, 1):
        if not (ch.isalnum() or ch in keys):
            raise UserError(f"invalid character {ch!r} at position {i} of {text!r}: codes are letters a-z (two "
                            f"a word), digits pick, {SPELL} spells a word, {' '.join(PUNCTUATION)} pass through")
    if not text.strip():
        raise UserError(f"no codes in {text!r}: type two letters a-z per word")


def compose(text: str, predictor: Predictor, k: int = PAGE_SIZE) -> Composer:
    """`text` typed key by key, without learning (`ime convert`, /api/convert); a key that does nothing
    raises a UserError naming it and its position."""
    from jax_llm.errors import UserError

    check_keys(text)
    composer = Composer(predictor, k=k)
    for i, ch in enumerate(text, 1):
        problem = composer.key(ch)
        if problem:
            raise UserError(f"position {i} of {text!r}: {problem}")
    composer.end_phrase()  # the end of the input ends a phrase
    return composer
