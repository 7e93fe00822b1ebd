"""Choosing the kn model's orders, weights and decays by top-1 accuracy on a dev slice carved from the end
of train (`words.dev_split`), never on test; `train_kn` tunes, then retrains on all of train."""

from collections.abc import Sequence

import numpy as np

from jax_llm.errors import UserError
from jax_llm.ime.ngram.cache import ConfirmedWords
from jax_llm.ime.ngram.kn import KN, CodeGroup, KNConfig, blend
from jax_llm.ime.language.words import Vocab, dev_split

WORD_WEIGHTS = (0.5, 0.7, 0.8, 0.9, 0.95)
CACHE_WEIGHTS = [(c, b) for c in (0.1, 0.2, 0.3, 0.4, 0.5) for b in (0.0, 0.1, 0.2, 0.3)]  # (cache, bigram)
CACHE_DECAYS = (100.0, 300.0, 1000.0)
MAX_DEV_WORDS = 40_000  # enough to rank the choices; keeps training in seconds


def _dev_hits(model: KN, codes, words, start, pick, all_orders=True) -> np.ndarray:
    """Top-1 hits over dev positions start.. of each score matrix `pick(group)` returns for a `CodeGroup`. A
    dev word the model cannot propose (outside the vocabulary and not yet in the cache) is a miss for every
    choice."""
    seen = ConfirmedWords(model.vocab, words)
    hits = 0
    for group in model.components(codes, words, start, all_orders):
        pos = group.positions
        want = np.where(seen.codes[pos] == group.code, seen.columns[pos], -1)
        hits = hits + np.array([int((m.argmax(1) == want).sum()) for m in pick(group)])
    return np.asarray(hits)


def tune(model: KN, codes: Sequence[str], words: Sequence[str], start: int, log=None) -> KNConfig:
    """Choose orders and weights for `model` (trained on words[:start]) by top-1 on positions start..

    Greedy, each stage one pass: the codes order (codes-only), then the words order with its weight,
    then the cache window with its weight. Returns a config with the dev accuracies recorded.
    """
    n = len(codes) - start
    say = log or (lambda *_: None)
    m = model.with_config(context="codes")
    acc = _dev_hits(m, codes, words, start, lambda g: g.p_codes) / n
    code_order = int(acc.argmax()) + 1
    tuned = {"dev_positions": n, "dev_codes_only_by_order": [round(float(a), 4) for a in acc]}
    say(f"dev codes-only top-1 by order: {tuned['dev_codes_only_by_order']} -> code order {code_order}")
    m = model.with_config(context="words", code_order=code_order)
    choices = [(order, weight) for order in range(1, model.words_lm.order + 1) for weight in WORD_WEIGHTS]

    def word_choices(g: CodeGroup):
        return [blend(g.p_codes[code_order - 1], g.p_words[order - 1], None, weight, 0, 0) for order, weight in choices]

    acc = _dev_hits(m, codes, words, start, word_choices) / n
    word_order, word_weight = choices[int(acc.argmax())]
    tuned["dev_words"] = round(float(acc.max()), 4)
    say(f"dev words top-1 {tuned['dev_words']:.4f} -> word order {word_order}, word weight {word_weight}")
    best = (-1.0, 0.0, 0.0)
    for decay in CACHE_DECAYS:
        m = model.with_config(context="words+cache", code_order=code_order, word_order=word_order,
                              word_weight=word_weight, cache_decay=decay)
        acc = _dev_hits(m, codes, words, start,
                        lambda g: [blend(g.p_codes, g.p_words, g.p_cache, word_weight, *cb) for cb in CACHE_WEIGHTS],
                        all_orders=False) / n
        say(f"dev words+cache decay {decay:g}: top-1 {acc.max():.4f} at cache, bigram cache weights "
            f"{CACHE_WEIGHTS[int(acc.argmax())]}")
        if acc.max() > best[0]:
            best = (float(acc.max()), decay, CACHE_WEIGHTS[int(acc.argmax())])
    tuned["dev_words_cache"] = round(best[0], 4)
    return KNConfig(code_order=code_order, word_order=word_order, word_weight=word_weight,
                    cache_weight=best[2][0], bigram_weight=best[2][1], cache_decay=best[1], tuned=tuned)


def train_kn(words: Sequence[str], vocab: Vocab, order: int = 4, log=None) -> KN:
    """A kn model of orders up to `order` on `words`, its settings tuned on a dev slice carved from the
    end of `words` (a model trained on the rest; at most MAX_DEV_WORDS scored), then retrained on all."""
    if order < 1:
        raise UserError(f"--order must be at least 1, got {order}")
    fit, _ = dev_split(words)
    dev_model = KN.train(fit, Vocab.build(fit), KNConfig(code_order=order, word_order=order))
    config = tune(dev_model, words, words, max(len(fit), len(words) - MAX_DEV_WORDS), log)
    return KN.train(words, vocab, config, max_code_order=order, max_word_order=order)
