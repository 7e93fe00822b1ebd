"""A model's own recency cache: the words this writer confirmed lately, mixed into any model's candidates.

p(w | code, context) = (1 - weight) * p_model(w | code, context) + weight * p_cache(w | code), where
p_cache is w's share among the last `window` confirmed words of the typed code (none: the model alone).
Writers repeat their words (names, topics) far beyond a Transformer's window; this remembers them
without the n-gram's tables, so "the Transformer alone" may use it. Weight and window are chosen on the
dev slice (`tune`), never on test.
"""

import math
from collections import Counter, deque
from collections.abc import Sequence

from jax_llm.ime.codes import word_code
from jax_llm.ime.evaluate import ContextView
from jax_llm.ime.words import WordCorpus


class RecentWords:
    """Per code, the counts of the words among the last `window` confirmed words."""

    def __init__(self, window: int):
        self.window, self.recent, self.counts = window, deque(), {}

    def push(self, word: str) -> None:
        self.recent.append(word)
        self.counts.setdefault(word_code(word), Counter())[word] += 1
        if len(self.recent) > self.window:
            old = self.recent.popleft()
            self.counts[word_code(old)][old] -= 1

    def shares(self, code: str) -> dict[str, float]:
        c = self.counts.get(code, {})
        total = sum(c.values())
        return {w: n / total for w, n in c.items() if n} if total else {}


def mix(ranked: list[tuple[str, float]], shares: dict[str, float], weight: float, k: int):
    """The model's (word, log-prob) best first, mixed with the cache's shares; a cached word below the
    model's list gets the list's last probability (an upper bound)."""
    if not shares:
        return ranked[:k]
    probs = {w: math.exp(s) for w, s in ranked}
    floor = min(probs.values(), default=0.0)
    mixed = {w: (1 - weight) * probs.get(w, floor) + weight * shares.get(w, 0.0) for w in probs.keys() | shares}
    best = sorted(mixed.items(), key=lambda kv: -kv[1])[:k]
    return [(w, math.log(p)) for w, p in best if p > 0]


class WithCache:
    """`model` plus the recency cache of the context's last `window` words."""

    def __init__(self, model, weight: float = 0.2, window: int = 2000, depth: int = 100):
        self.model, self.weight, self.window, self.depth = model, weight, window, depth
        self.vocab = getattr(model, "vocab", None)
        self.kind = getattr(model, "kind", "model") + " + own cache"
        self.order = f"{getattr(model, 'order', '')} w={weight} n={window}".strip()

    def candidates(self, code: str, context: Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        cache = RecentWords(self.window)
        for w in context[max(0, len(context) - self.window):]:
            cache.push(w)
        return mix(self.model.candidates(code, context, max(k, self.depth)), cache.shares(code), self.weight, k)

    def rank_split(self, codes: Sequence[str], words: Sequence[str], k: int, start: int = 0) -> list[list[str]]:
        """Batch hook: the model scores the split at once when it can; the cache walks it word by word."""
        return self.mixed(model_rows(self.model, codes, words, max(k, self.depth), start), codes, words, k, start)

    def mixed(self, rows, codes: Sequence[str], words: Sequence[str], k: int, start: int) -> list[list[str]]:
        cache = RecentWords(self.window)
        for w in words[max(0, start - self.window): start]:
            cache.push(w)
        out = []
        for i, row in zip(range(start, len(codes)), rows):
            out.append([w for w, _ in mix(row, cache.shares(codes[i]), self.weight, k)])
            cache.push(words[i])
        return out


def model_rows(model, codes: Sequence[str], words: Sequence[str], k: int, start: int):
    """[(word, log-prob), ...] best first at positions start..: at once when the model can."""
    if hasattr(model, "scored_split"):
        return model.scored_split(codes, words, k, start)
    return [model.candidates(codes[i], ContextView(words, i), k) for i in range(start, len(codes))]


def tune(model, train_words: Sequence[str], weights=(0.05, 0.1, 0.2, 0.3), windows=(500, 2000, 10000)):
    """(weight, window, dev top-1) with the best top-1 on the dev slice (the last 10% of `train_words`,
    which `model` must not have been trained on)."""
    from jax_llm.ime.evaluate import hit_rates

    dev = WordCorpus("dev", list(train_words))
    codes = [word_code(w) for w in dev.words]
    rows = model_rows(model, codes, dev.words, 100, dev.n_train)
    best = None
    for window in windows:
        for weight in weights:
            ranked = WithCache(model, weight, window).mixed(rows, codes, dev.words, 1, dev.n_train)
            top1 = hit_rates(ranked, dev.test, (1,))[1]
            if best is None or top1 > best[2]:
                best = (weight, window, top1)
    return best
