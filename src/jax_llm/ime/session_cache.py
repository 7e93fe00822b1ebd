"""A model's own recency caches: the words this writer confirmed lately, mixed into any model's candidates.

p(w | code, context) = (1 - a - b) p_model(w) + a p_code(w) + b p_follow(w), where p_code is w's share
among the confirmed words of the typed code and p_follow its share among those of that code that
followed the same previous word, each occurrence weighted by exp(-age / decay) (age in words). A cache
that holds nothing for the key gives its weight back to the model. Writers repeat their words (names,
topics) far beyond a Transformer's window; the caches remember them without the n-gram's tables, so "the
Transformer alone" may use them. Weights and decay are chosen on the dev slice (`tune`), never on test.
"""

import math
from collections.abc import Sequence

from jax_llm.ime.codes import word_code
from jax_llm.ime.evaluate import ContextView
from jax_llm.ime.words import WordCorpus


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

    def shares(self, code: str, follow: bool = False) -> dict[str, float]:
        """Each cached word's share for `code` (`follow`: among the words that followed the last one)."""
        got = self.by_key.get((self.prev, code) if follow else code, {})
        weights = {w: v * math.exp((t - self.now) / self.decay) for w, (v, t) in got.items()}
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


class WithCache:
    """`model` plus the recency caches of the context (weights `code` and `follow`, `decay` in words)."""

    def __init__(self, model, code: float = 0.2, follow: float = 0.1, decay: float = 1000, depth: int = 100):
        self.model, self.code, self.follow, self.decay, self.depth = model, code, follow, decay, depth
        self.vocab = getattr(model, "vocab", None)
        self.kind = getattr(model, "kind", "model") + " + own cache"
        self.order = f"{getattr(model, 'order', '')} a={code} b={follow} d={decay}".strip()
        self._last = None  # (caches, context length, its last TAIL words): a typist's next keystroke reuses it

    TAIL = 16

    def _cache(self, words: Sequence[str], end: int) -> RecentWords:
        cache = RecentWords(self.decay)
        for w in words[max(0, end - int(20 * self.decay)): end]:  # older words weigh under e^-20
            cache.push(w)
        return cache

    def _cache_for(self, context: Sequence[str]) -> RecentWords:
        """The caches of `context`, grown by its new last word when it is the last context plus one word
        (checked on the last TAIL words and the length, as ngram.ConfirmedWords does)."""
        n, last = len(context), self._last
        tail = list(context[max(0, n - self.TAIL):])
        if last is not None and last[1] == n and last[2] == tail:
            return last[0]
        if last is not None and last[1] == n - 1 and last[2][1 - self.TAIL:] == tail[:-1][1 - self.TAIL:]:
            last[0].push(context[n - 1])
        else:
            last = (self._cache(context, n),)
        self._last = (last[0], n, tail)
        return last[0]

    def _mix(self, row, cache: RecentWords, code: str, k: int):
        return mix(row, [(cache.shares(code), self.code), (cache.shares(code, follow=True), self.follow)], k)

    def candidates(self, code: str, context: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        row = self.model.candidates(code, context, max(k, self.depth))
        return self._mix(row, self._cache_for(context), code, k)

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """Batch hook (the harness's)."""
        return [[w for w, _ in row] for row in self.scored_split(codes, words, k, start)]

    def scored_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0):
        """[(word, log-prob), ...] best first at positions start..: the model scores the split at once when
        it can; the caches walk it word by word."""
        return self.mixed(model_rows(self.model, codes, words, max(k, self.depth), start), codes, words, k, start)

    def mixed(self, rows, codes: Sequence[str], words: Sequence[str], k: int, start: int):
        cache, out = self._cache(words, start), []
        for i, row in zip(range(start, len(codes)), rows):
            out.append(self._mix(row, cache, codes[i], k))
            cache.push(words[i])
        return out


def model_rows(model, codes: Sequence[str], words: Sequence[str], k: int, start: int):
    """[(word, log-prob), ...] best first at positions start..: at once when the model can."""
    if hasattr(model, "scored_split"):
        return model.scored_split(codes, words, k, start)
    return [model.candidates(codes[i], ContextView(words, i), k) for i in range(start, len(codes))]


def tune(model, train_words: Sequence[str], codes=(0.2, 0.3, 0.4, 0.5, 0.6), follows=(0.0, 0.1, 0.2),
         decays=(300, 1000, 3000)):
    """(code weight, follow weight, decay, dev top-1) with the best top-1 on the dev slice (the last 10% of
    `train_words`, which `model` must not have been trained on): decay and code weight first, then the
    follow weight."""
    from jax_llm.ime.evaluate import hit_rates

    dev = WordCorpus("dev", list(train_words))
    dev_codes = [word_code(w) for w in dev.words]
    rows = model_rows(model, dev_codes, dev.words, 100, dev.n_train)

    def top1(a, b, d):
        ranked = WithCache(model, a, b, d).mixed(rows, dev_codes, dev.words, 1, dev.n_train)
        return hit_rates([[w for w, _ in r] for r in ranked], dev.test, (1,))[1]

    a, d = max(((a, d) for a in codes for d in decays), key=lambda ad: top1(ad[0], 0.0, ad[1]))
    b = max(follows, key=lambda b: top1(a, b, d))
    return a, b, d, top1(a, b, d)
