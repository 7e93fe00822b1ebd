"""Settings the study chooses on the dev slice (the last 10% of train), never on test: a model's own
recency caches (`tune_cache`)."""

from collections.abc import Sequence

from jax_llm.ime.combine import WithCache
from jax_llm.ime.predictor import Predictor
from jax_llm.ime.language.codes import word_code
from jax_llm.ime.language.words import WordCorpus
from jax_llm.ime.study.evaluate import hit_rates


def tune_cache(model: Predictor, train_words: Sequence[str], codes=(0.2, 0.3, 0.4, 0.5, 0.6), follows=(0.0, 0.1, 0.2),
         decays=(300, 1000, 3000)):
    """(code weight, follow weight, decay, dev top-1) with the best top-1 on the dev slice (the last 10% of
    `train_words`, which `model` must not have been trained on): decay and code weight first, then the
    follow weight."""
    dev = WordCorpus("dev", list(train_words))
    dev_codes = [word_code(w) for w in dev.words]
    rows = model.scored_split(dev_codes, dev.words, 100, dev.n_train)

    def top1(a, b, d):
        ranked = WithCache(model, a, b, d).mixed(rows, dev_codes, dev.words, 1, dev.n_train)
        return hit_rates([[w for w, _ in r] for r in ranked], dev.test, (1,))[1]

    a, d = max(((a, d) for a in codes for d in decays), key=lambda ad: top1(ad[0], 0.0, ad[1]))
    b = max(follows, key=lambda b: top1(a, b, d))
    return a, b, d, top1(a, b, d)
