"""Two input-method models combined over the words of the typed code: a product of experts,
score(w) = log p_a(w) + weight * log p_b(w), or a mixture, p(w) = weight * p_a(w) + (1 - weight) * p_b(w).
The Transformer and the Kneser-Ney model err differently (learned similarity against exact counts and a
recency cache), so a combination can beat both; the weight is tuned on the dev slice, never on test."""

import math
from collections.abc import Sequence

from jax_llm.ime.session_cache import model_rows


class Ensemble:
    def __init__(self, a, b, weight: float = 1.0, depth: int = 50, mixture: bool = False):
        self.a, self.b, self.weight, self.depth, self.mixture = a, b, weight, depth, mixture
        self.vocab = a.vocab

    def _merge(self, ranked_a: list[tuple[str, float]], ranked_b: list[tuple[str, float]], k: int):
        if not ranked_a and not ranked_b:
            return []
        score_a, score_b = dict(ranked_a), dict(ranked_b)
        # a word outside one model's top `depth` gets a score just below that model's last one
        floor_a = min(score_a.values(), default=0.0) - math.log(2)
        floor_b = min(score_b.values(), default=0.0) - math.log(2)
        words, weight = score_a.keys() | score_b.keys(), self.weight
        if self.mixture:
            scored = {w: math.log(weight * math.exp(score_a.get(w, floor_a))
                                  + (1 - weight) * math.exp(score_b.get(w, floor_b))) for w in words}
        else:
            scored = {w: score_a.get(w, floor_a) + weight * score_b.get(w, floor_b) for w in words}
        ranked = sorted(scored.items(), key=lambda kv: -kv[1])[:k]
        norm = math.log(sum(math.exp(v - ranked[0][1]) for v in scored.values())) + ranked[0][1]
        return [(w, v - norm) for w, v in ranked]

    def candidates(self, code: str, context: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        depth = self.depth
        return self._merge(self.a.candidates(code, context, depth), self.b.candidates(code, context, depth), k)

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0):
        """Batch hook: [(word, log-prob), ...] best first at positions start..; each model ranks the split at
        once when it can, else position by position."""
        rows_a = model_rows(self.a, codes, words, self.depth, start)
        rows_b = model_rows(self.b, codes, words, self.depth, start)
        return [self._merge(a, b, k) for a, b in zip(rows_a, rows_b)]

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        return [[w for w, _ in row] for row in self.scored_split(codes, words, k, start)]
