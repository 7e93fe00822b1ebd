"""Models combined over the typed code's words, each itself a `Predictor`: a model with its own recency
caches of the writer's words (`WithCache`), two models as a product of experts or a mixture (`Ensemble`),
and any model with the user dictionary's words ranked among its candidates (`WithUserWords`). Each
formula is in its class's docstring; the study's weights are chosen on the dev slice (`study.tune`).
"""

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from jax_llm.ime.language.codes import word_code
from jax_llm.ime.phrase import BEAM, Rerank
from jax_llm.ime.predictor import Predictor

if TYPE_CHECKING:
    from jax_llm.ime.apps.userdict import UserDict


# ---------------------------------------------------------------- a model's own recency caches

class RecentWords:
    """Decayed counts of the confirmed words, per code and per (previous word, code)."""

    def __init__(self, decay: float):
        self.decay, self.now, self.by_key = decay, 0, {}
        self.prev = None

    def _add(self, key, word: str) -> None:
        got = self.by_key.setdefault(key, {})
        value, then = got.get(word, (0.0, self.now))
        got[word] = (value * math.exp((then - self.now) / self.decay) + 1.0, self.now)

    def push(self, word: str) -> None:
        self.now += 1
        code = word_code(word)
        self._add(code, word)
        self._add((self.prev, code), word)
        self.prev = word

    def shares(self, code: str, follow: bool = False, after: Sequence[str] = ()) -> dict[str, float]:
        """Each cached word's share for `code` (`follow`: among the words that followed the last one), as if
        the words `after` (a phrase's hypothesis) had been pushed too; the cache itself stays as it is."""
        m, prev = len(after), after[-1] if after else self.prev
        got = self.by_key.get((prev, code) if follow else code, {})
        weights = {w: v * math.exp((t - self.now - m) / self.decay) for w, (v, t) in got.items()}
        for i, (before, w) in enumerate(zip([self.prev, *after], after)):  # w pushed i + 1 words from now
            if word_code(w) == code and (not follow or before == prev):
                weights[w] = weights.get(w, 0.0) + math.exp((i + 1 - m) / self.decay)
        total = sum(weights.values())
        return {w: x / total for w, x in weights.items()} if total > 1e-12 else {}


def mix(ranked: list[tuple[str, float]], caches: list[tuple[dict[str, float], float]], k: int):
    """The model's (word, log-prob) best first, mixed with caches given as (shares, weight); an empty
    cache's weight stays with the model, and a cached word below the model's list gets the list's last
    probability (an upper bound)."""
    caches = [(c, w) for c, w in caches if c and w > 0]
    if not caches:
        return ranked[:k]
    probs = {w: math.exp(s) for w, s in ranked}
    floor = min(probs.values(), default=0.0)
    keep = 1 - sum(w for _, w in caches)
    words = set(probs).union(*(c.keys() for c, _ in caches))
    mixed = {x: keep * probs.get(x, floor) + sum(w * c.get(x, 0.0) for c, w in caches) for x in words}
    best = sorted(mixed.items(), key=lambda kv: -kv[1])[:k]
    return [(w, math.log(p)) for w, p in best if p > 0]


class WithCache(Predictor):
    """`model` plus the recency caches of its context: the words this writer confirmed lately.

    p(w | code, context) = (1 - a - b) p_model(w) + a p_code(w) + b p_follow(w), where p_code is w's share
    among the confirmed words of the typed code and p_follow its share among those of that code that
    followed the same previous word, each occurrence weighted by exp(-age / decay) (age in words): weights
    a = `code`, b = `follow`. A cache that holds nothing for the key gives its weight back to the model.
    Writers repeat their words (names, topics) far beyond a Transformer's window; the caches remember them
    without the n-gram's tables, so "the Transformer alone" may use them.
    """

    def __init__(self, model: Predictor, code: float = 0.2, follow: float = 0.1, decay: float = 1000,
                 depth: int = 100):
        self.model, self.code, self.follow, self.decay, self.depth = model, code, follow, decay, depth
        self.vocab = model.vocab
        self._last = None  # (caches, context length, its last TAIL words): a typist's next keystroke reuses it

    TAIL = 16

    def _cache(self, words: Sequence[str], end: int) -> RecentWords:
        cache = RecentWords(self.decay)
        for w in words[max(0, end - int(20 * self.decay)): end]:  # older words weigh under e^-20
            cache.push(w)
        return cache

    def _cache_for(self, context: Sequence[str]) -> RecentWords:
        """The caches of `context`, grown by its new words when it extends the last context (a typist's next
        word, the next phrase): checked on the length and the last TAIL words of the last context."""
        n, last = len(context), self._last
        if last is not None and last[1] <= n and list(context[max(0, last[1] - self.TAIL): last[1]]) == last[2]:
            cache = last[0]
            for w in context[last[1]: n]:
                cache.push(w)
        else:
            cache = self._cache(context, n)
        self._last = (cache, n, list(context[max(0, n - self.TAIL):]))
        return cache

    def _mix(self, row, cache: RecentWords, code: str, k: int, after: Sequence[str] = ()):
        return mix(row, [(cache.shares(code, after=after), self.code),
                         (cache.shares(code, follow=True, after=after), self.follow)], k)

    @property
    def label(self) -> tuple[str, str]:
        name, settings = self.model.label
        return f"{name} + own cache", f"{settings} a={self.code} b={self.follow} d={self.decay}".strip()

    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        row = self.model.candidates(code, context, max(k, self.depth), ahead)
        return self._mix(row, self._cache_for(context), code, k)

    def convert_phrases(self, phrases, beam: int | None = None) -> list[list[str]]:
        """The model's phrase search (batched when it has one), its candidates mixed with the caches of the
        phrase's context and of the hypothesis's own words; one phrase at a time, each phrase's context
        the cache's (grown from the last one's)."""
        out = []
        for context, codes, fixed in phrases:
            cache = self._cache_for(context)
            mixed = Rerank(max(beam or BEAM, self.depth),
                           lambda before, code, row, k, cache=cache: self._mix(row, cache, code, k, before))
            out += self.model.convert_phrases([(context, codes, fixed)], beam, mixed)
        return out

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0):
        """The model scores the split at once when it can; the caches walk it word by word."""
        return self.mixed(self.model.scored_split(codes, words, max(k, self.depth), start), codes, words, k, start)

    def mixed(self, rows, codes: Sequence[str], words: Sequence[str], k: int, start: int):
        """The model's `rows` (its `scored_split` from `start`) mixed with the caches, position by position."""
        cache, out = self._cache(words, start), []
        for i, row in zip(range(start, len(codes)), rows):
            out.append(self._mix(row, cache, codes[i], k))
            cache.push(words[i])
        return out


# ---------------------------------------------------------------- two models: product or mixture

class Ensemble(Predictor):
    """Two models combined over the typed code's words: a product of experts,
    score(w) = log p_a(w) + weight * log p_b(w), or (`mixture`) p(w) = weight * p_a(w) + (1 - weight) * p_b(w).
    The Transformer and the Kneser-Ney model err differently (learned similarity against exact counts and a
    recency cache), so a combination can beat both. Each model ranks `depth` words."""

    def __init__(self, a: Predictor, b: Predictor, weight: float = 1.0, depth: int = 50, mixture: bool = False):
        self.a, self.b, self.weight, self.depth, self.mixture = a, b, weight, depth, mixture
        self.vocab = a.vocab

    @property
    def label(self) -> tuple[str, str]:
        return f"{self.a.label[0]} {'+' if self.mixture else 'x'} {self.b.label[0]}", f"w={self.weight}"

    def merge(self, ranked_a: list[tuple[str, float]], ranked_b: list[tuple[str, float]], k: int):
        """The top `k` of the combination of one position's two rankings, as log-probabilities."""
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

    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        depth = self.depth
        return self.merge(self.a.candidates(code, context, depth), self.b.candidates(code, context, depth), k)

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0):
        """Each model ranks the split its own way (at once when it can); then they merge position by position."""
        rows_a = self.a.scored_split(codes, words, self.depth, start)
        rows_b = self.b.scored_split(codes, words, self.depth, start)
        return [self.merge(a, b, k) for a, b in zip(rows_a, rows_b)]


# ---------------------------------------------------------------- the writer's own words

PRIOR = 5.0
EVERY = 1 << 20  # "all the candidates" for a model's `k`


class WithUserWords(Predictor):
    """Any model's candidates with the writer's own words ranked among them (`apps.userdict.UserDict`).

    For a code whose words the writer has taught the dictionary N times in all (n_w times for word w):

        p(w) = (1 - u) * p_model(w) + u * n_w / N,   with u = N / (N + PRIOR)

    p_model is the model's scores over all its candidates for the code turned into probabilities (a
    softmax, which leaves the log-probabilities of kn, the Transformer and the ensembles as they are); a
    word outside the model's vocabulary has p_model = 0 and so the user-dictionary score n_w / (N + PRIOR).
    The share u grows with what the writer has shown for this code: one word spelled once gets 1/6, enough
    to be offered on the first page without pushing a common word off the top; used often, it comes first.
    A code the writer taught nothing is passed through untouched (the model's own scores, and its cost).
    """

    def __init__(self, model: Predictor, user: "UserDict"):
        self.model, self.user = model, user
        self.vocab = model.vocab
        self.lookahead = model.lookahead  # a lookahead model's revisions are ranked with the writer's words too

    @property
    def label(self) -> tuple[str, str]:
        name, settings = self.model.label
        return f"{name} + user words", settings

    def candidates(self, code: str, context: Sequence[str], k: int = 10,
                   ahead: Sequence[str] = ()) -> list[tuple[str, float]]:
        mine = self.user.by_code(code)
        if not mine:
            return self.model.candidates(code, context, k, ahead)
        scored = [(w, s) for w, s in self.model.candidates(code, context, EVERY, ahead) if math.isfinite(s)]
        top = max((s for _, s in scored), default=0.0)
        norm = sum(math.exp(s - top) for _, s in scored) or 1.0
        n = sum(mine.values())
        u = n / (n + PRIOR)
        p = {w: (1 - u) * math.exp(s - top) / norm for w, s in scored}
        for w, c in sorted(mine.items(), key=lambda kv: (-kv[1], kv[0])):  # new words: most used first
            p[w] = p.get(w, 0.0) + u * c / n
        best = sorted(p.items(), key=lambda kv: -kv[1])[:k]  # stable: ties keep the model's order
        return [(w, math.log(q)) for w, q in best]

    def convert_phrase(self, codes: Sequence[str], context: Sequence[str], fixed: Mapping[int, str] = {},
                       beam: int | None = None) -> list[str]:
        """The model's own (faster) conversion when the writer taught none of the phrase's codes a word:
        its candidates are then the model's, untouched."""
        if any(self.user.by_code(c) for c in codes):
            return super().convert_phrase(codes, context, fixed, beam)
        return self.model.convert_phrase(codes, context, fixed, beam)
