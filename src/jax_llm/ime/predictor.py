"""The one interface every FTCIM model offers, so the harness, `convert_codes`, the terminal and the web
server never need to know which model they drive (an n-gram model or the Transformer).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from jax_llm.errors import UserError
from jax_llm.ime.codes import parse_codes
from jax_llm.ime.modelfiles import read_meta


@runtime_checkable
class Predictor(Protocol):
    def candidates(self, code: str, context: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        """Ranked (word, score) for typed `code`, given confirmed previous words `context` (oldest first);
        score = log-prob or comparable, higher better. Every word returned has code `code`; an empty
        list means the model knows no word with that code."""
        ...


def lookahead(predictor) -> int:
    """How many codes after a word the model reads to rank it (`ime train --lookahead K`); 0 for a model
    without that (every n-gram model), which never sees later codes."""
    return getattr(predictor, "lookahead", 0)


def ranked(predictor, code: str, context: Sequence[str], k: int, ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
    """`predictor.candidates`, with the codes typed after `code` for a lookahead model (the revised
    ranking); another model is asked as always, so it needs no `ahead` parameter."""
    if ahead and lookahead(predictor):
        return predictor.candidates(code, context, k, ahead=ahead)
    return predictor.candidates(code, context, k)


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
        from jax_llm.ime.neural import TransformerPredictor  # imports JAX: only for a Transformer

        return TransformerPredictor(p)
    if p.is_dir():
        return ngram.load(p)
    if str(path_or_name) in ngram.MODEL_KINDS:
        return ngram.load_or_train_default(str(path_or_name))
    if p.exists():
        raise UserError(f"not a model directory: {p}")
    raise UserError(f"model not found: {path_or_name} (give a directory from `jax-llm ime train-ngram` "
                    f"or one of: {', '.join(ngram.MODEL_KINDS)})")
