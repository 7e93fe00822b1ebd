"""Phrase conversion: when the writer ends a phrase, its words are decoded again jointly from all of its
codes, by beam search over each code's candidates, with the confirmed words before the phrase as context.
A model that reads later codes (`lookahead`) sees the rest of the phrase at every word; the beam lets a
later word's evidence change an earlier choice. Words the writer picked or spelled stay (`fixed`).

`beam_search` works with any `Predictor` through `candidates`; the Transformer has a batched version
with a KV cache per hypothesis (`transformer.phrase`) that gives the same words. A `Rerank` lets a wrapper
(`combine.WithCache`) re-rank each hypothesis's candidates inside either search.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jax_llm.ime.predictor import Joined, Predictor, context_word, placeholder

BEAM = 8  # hypotheses kept per word (chosen on the dev slice, docs/ime.md)


@dataclass(frozen=True)
class Rerank:
    """The model's best `depth` candidates of a hypothesis's next code, re-ranked by
    `fn(before, code, ranked, k)`: `before` the hypothesis's words in the phrase so far (context words),
    `ranked` the model's (word, log-prob); it returns the best `k`."""

    depth: int
    fn: Callable[[Sequence[str], str, list[tuple[str, float]], int], list[tuple[str, float]]]


def beam_search(model: Predictor, codes: Sequence[str], context: Sequence[str], fixed: Mapping[int, str] = {},
                beam: int = BEAM, rerank: Rerank | None = None) -> list[str]:
    """The best sequence of words for `codes` after `context` (model words; a code with no known word gives
    its placeholder), by the sum of the words' log-probabilities."""
    hyps: list[tuple[list[str], float]] = [([], 0.0)]
    for j, code in enumerate(codes):
        if j in fixed:
            hyps = [(words + [fixed[j]], score) for words, score in hyps]
            continue
        grown = []
        for words, score in hyps:
            before = [context_word(w, c) for w, c in zip(words, codes)]
            ranked = model.candidates(code, Joined(context, before), rerank.depth if rerank else beam, codes[j + 1:])
            if rerank:
                ranked = rerank.fn(before, code, ranked, beam)
            grown += [(words + [w], score + s) for w, s in ranked] or [(words + [placeholder(code)], score)]
        hyps = sorted(grown, key=lambda h: -h[1])[:beam]  # stable: ties keep the model's order
    return hyps[0][0]
