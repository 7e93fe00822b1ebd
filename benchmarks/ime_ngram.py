"""FTCIM n-gram figures: the study's table (backoff) next to the published one, Kneser-Ney in three
settings, training time and keystroke latency. Prints markdown; asserts nothing (see tests/ime).

    JAX_LLM_DATA_DIR=../shared/data python benchmarks/ime_ngram.py [shakespeare tinyshakespeare wikitext2-test]
"""

import sys
import time

import numpy as np

from jax_llm.ime import ngram
from jax_llm.ime.study import evaluate
from jax_llm.ime.language.codes import word_code
from jax_llm.ime.language.words import Vocab, load_corpus

PUBLISHED = {1: (.472, .473), 2: (.549, .522), 3: (.765, .505), 4: (.965, .499), 5: (.997, .499), 6: (1.000, .499)}


def backoff_table(corpus, whole_file: bool) -> str:
    vocab = Vocab.build(corpus.words if whole_file else corpus.train)
    full = ngram.Backoff.train(corpus.train, vocab, 6)
    codes, nt = [word_code(w) for w in corpus.words], corpus.n_train
    truth = vocab.encode(corpus.words)
    lines = ["| order | train acc | test acc | published train / test |", "|---:|---:|---:|---|"]
    for n in range(1, 7):
        m = full.truncated(n)
        train = np.mean(m.top1_ids(codes[:nt]) == truth[:nt])
        test = np.mean(m.top1_ids(codes, nt) == truth[nt:])
        pub = " / ".join(f"{x:.3f}" for x in PUBLISHED[n]) if corpus.name == "shakespeare" else "—"
        lines.append(f"| {n} | {train:.3f} | {test:.3f} | {pub} |")
    return "\n".join(lines) + "\n"


def main(names: list[str]) -> None:
    for name in names:
        corpus = load_corpus(name)
        print(f"## {name}\n\nbackoff, vocabulary from the whole file (the study's setting):\n")
        print(backoff_table(corpus, whole_file=True))
        vocab = Vocab.build(corpus.train)
        rows = []
        full = ngram.Backoff.train(corpus.train, vocab, 6)
        for n in range(1, 7):
            rows.append(evaluate.score(full.truncated(n), corpus, "backoff", str(n)))
        t = time.perf_counter()
        kn = ngram.train_kn(corpus.train, vocab, log=lambda s: print(f"    {s}", file=sys.stderr))
        seconds = time.perf_counter() - t
        for context in ngram.CONTEXTS:
            m = kn.with_config(context=context)
            rows.append(evaluate.score(m, corpus, f"kn {context}", m.label[1]))
        print(evaluate.table(rows, f"{name}: {corpus.n_train:,} train / {len(corpus.test):,} test words, "
                                   f"vocabulary from train ({len(vocab) - 1:,} words)"))
        codes = [word_code(w) for w in corpus.words]
        us = np.array(evaluate.keystroke_times(kn, codes, corpus.words, corpus.n_train, sessions=50)) * 1e6
        print(f"kn training (with dev tuning): {seconds:.1f} s. Keystroke (kn words+cache, {len(us)} calls): "
              f"min {us.min():.0f} µs, median {np.median(us):.0f} µs, 90th percentile {np.percentile(us, 90):.0f} µs, "
              f"max {us.max():.0f} µs. Tuned: {kn.config}\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["shakespeare", "tinyshakespeare", "wikitext2-test"])
