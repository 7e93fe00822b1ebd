"""The one interface every input-method model offers (`Predictor`), so the harness, the composer, the
terminal and the web server never need to know which model they drive; what they share about a
conversion (`convert_codes`, the placeholder of a code with no known word); and `load_predictor`.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jax_llm.errors import UserError
from jax_llm.ime.language.codes import parse_codes
from jax_llm.ime.modelfiles import read_meta

if TYPE_CHECKING:
    from jax_llm.ime.language.words import Vocab
    from jax_llm.ime.phrase import Rerank


class ContextView(Sequence):
    """words[:end] without copying (the harness's context for position `end`)."""

    def __init__(self, words: Sequence[str], end: int):
        self.words, self.end = words, end

    def __len__(self) -> int:
        return self.end

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.words[j] for j in range(self.end)[i]]
        if i < 0:
            i += self.end
        if not 0 <= i < self.end:
            raise IndexError(i)
        return self.words[i]


class Joined(Sequence):
    """`head` followed by the list `tail`, without copying `head` (a hypothesis after a long context)."""

    def __init__(self, head: Sequence[str], tail: list[str]):
        self.head, self.tail = head, tail

    def __len__(self) -> int:
        return len(self.head) + len(self.tail)

    def __getitem__(self, i):
        n = len(self.head)
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.head[i] if i < n else self.tail[i - n]


class Predictor(ABC):
    """An input-method model: the words of a typed code, ranked given the words confirmed before it.

    A model implements `candidates`; it overrides `scored_split` or `rank_split` when it can rank a whole
    split faster than position by position (the harness's batch), keeping their online rule.
    """

    vocab: "Vocab | None" = None  # the words it can propose (the harness's OOV rate); None when it has none
    lookahead: int = 0  # codes after a word it reads to rank it (`ime train --lookahead K`); 0: online

    @abstractmethod
    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        """At most `k` (word, score) for typed `code`, best first, given the confirmed previous words
        `context` (oldest first); score = log-prob or comparable, higher better. Every word returned has
        code `code`; an empty list means the model knows no word with that code. A string that is not a
        code raises UserError (`codes.code_id`). `ahead`: the codes typed after `code`, read by a lookahead
        model (up to its `lookahead`) and ignored by any other."""

    @property
    def label(self) -> tuple[str, str]:
        """(model, settings): the first two columns of its row in the harness's table."""
        return "model", ""

    def convert_phrase(self, codes: Sequence[str], context: Sequence[str], fixed: Mapping[int, str] = {},
                       beam: int | None = None) -> list[str]:
        """The words of a whole phrase of `codes`, decoded jointly after the confirmed `context`; `fixed`:
        position -> word the writer picked or spelled, kept as it is (`phrase.beam_search`)."""
        return self.convert_phrases([(context, codes, fixed)], beam)[0]

    def convert_phrases(self, phrases: Sequence[tuple[Sequence[str], Sequence[str], Mapping[int, str]]],
                        beam: int | None = None, rerank: "Rerank | None" = None) -> list[list[str]]:
        """`convert_phrase` for many (context, codes, fixed) at once (the phrase protocol's batch); `rerank`
        re-ranks every hypothesis's candidates (`phrase.Rerank`)."""
        from jax_llm.ime import phrase  # here: phrase builds on this module

        beam = phrase.BEAM if beam is None else beam
        return [phrase.beam_search(self, codes, context, fixed, beam, rerank) for context, codes, fixed in phrases]

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int,
                     start: int = 0) -> list[list[tuple[str, float]]]:
        """`candidates` at each position i in start..len(codes)-1, online: position i reads codes[:i+1] and
        words[:i] (the true words, as confirmed) only, never a later code."""
        return [self.candidates(codes[i], ContextView(words, i), k) for i in range(start, len(codes))]

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """The words of `scored_split`, without their scores."""
        return [[w for w, _ in row] for row in self.scored_split(codes, words, k, start)]


def placeholder(code: str) -> str:
    """What is shown for a code with no known word: visible, and never a real word."""
    return f"[{code.strip()}?]"


def shown_word(code: str, candidates: Sequence[tuple[str, float]]) -> str:
    """The word shown for a typed `code`: its top candidate, or its placeholder when there is none."""
    return candidates[0][0] if candidates else placeholder(code)


def context_word(shown: str, code: str) -> str:
    """What a word shown for `code` stands as in the context of later predictions: itself, or, for a code
    with no known word (shown as its placeholder), the code's own letters: an unknown word with the right
    code, so later positions still see the correct codes."""
    return code.strip() if shown == placeholder(code) else shown


@dataclass
class Step:
    """One converted position: the typed code, its ranked candidates, and the word shown."""

    code: str
    candidates: list[tuple[str, float]]

    @property
    def word(self) -> str:
        return shown_word(self.code, self.candidates)

    @property
    def known(self) -> bool:
        return bool(self.candidates)


def convert_codes(codes: str | Sequence[str], predictor: Predictor, k: int = 1,
                  confirmed: Sequence[str] | None = None) -> list[Step]:
    """Online conversion: each code is converted knowing only it and the codes before it.

    `codes` is typed text (parsed with `parse_codes`, which raises UserError on bad input) or a list of
    codes. The context for position i holds, for each earlier position, the confirmed word where
    `confirmed` covers it (the user accepted it), else the model's own top-1 choice. A code with no known
    word yields a step without candidates (shown as `placeholder(code)`); in the context it stands as its
    own letters (`context_word`).
    """
    if k < 1:
        raise UserError(f"--top-k must be at least 1, got {k}")
    if isinstance(codes, str):
        codes = parse_codes(codes)
    context: list[str] = []
    steps = []
    for i, code in enumerate(codes):
        step = Step(code, predictor.candidates(code, context, k))
        steps.append(step)
        if confirmed is not None and i < len(confirmed):
            context.append(confirmed[i])
        else:
            context.append(context_word(step.word, code))
    return steps


def load_predictor(path_or_name: str | Path) -> Predictor:
    """A model directory written by `jax-llm ime train-ngram` or `jax-llm ime train`, or a model name (`kn`,
    `backoff`) meaning that model trained on `shakespeare`, trained once and cached (see
    `ngram.default_model_dir`).

    Directories are recognised by their `model.json` `kind` ("transformer", or an n-gram kind). A damaged
    directory is refused with one line naming the file (`modelfiles`), and left as it is.
    """
    from jax_llm.ime import ngram  # here, not at the top: the CLI imports this module, and numpy is slow to load

    p = Path(path_or_name)
    if p.is_dir() and read_meta(p)["kind"] == "transformer":
        from jax_llm.ime.transformer.predictor import TransformerPredictor  # imports JAX: only for a Transformer

        return TransformerPredictor(p)
    if p.is_dir():
        return ngram.load(p)
    if str(path_or_name) in ngram.MODEL_KINDS:
        return ngram.load_or_train_default(str(path_or_name))
    if p.exists():
        raise UserError(f"not a model directory: {p}")
    raise UserError(f"model not found: {path_or_name} (give a directory from `jax-llm ime train-ngram` "
                    f"or one of: {', '.join(ngram.MODEL_KINDS)})")
