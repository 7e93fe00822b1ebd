"""What one key costs in `ime type`: the composer fed the codes of test words key by key, timing the keys
that complete a code (those call the model; with a `--lookahead` model, its revision of the previous
word too), and the mark that ends each session's phrase (its words converted again together). Median
and p90 over typing sessions spread over the test split.

    python benchmarks/ime_type_latency.py RUN [RUN ...] [--dataset shakespeare] [--data-dir ../shared/data]
"""

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from jax_llm.errors import UserError
from jax_llm.ime.language.codes import word_code
from jax_llm.ime.apps.composer import Composer
from jax_llm.ime.predictor import load_predictor
from jax_llm.ime.language.words import load_corpus


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model directories (or kn, backoff)")
    ap.add_argument("--dataset", default="shakespeare")
    ap.add_argument("--data-dir", default=os.environ.get("JAX_LLM_DATA_DIR"))
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--words", type=int, default=25, help="words typed per session")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    test = load_corpus(args.dataset, args.data_dir).test
    for name in args.models:
        predictor = load_predictor(name)
        times, marks = [], []
        for start in np.linspace(0, len(test) - args.words, args.sessions, dtype=int):
            composer = Composer(predictor)
            for i, word in enumerate(test[start: start + args.words]):
                for ch in word_code(word):  # a one-letter word's code is its letter and a space
                    t = time.perf_counter()
                    composer.key(ch)
                    if composer.complete and i:  # the session's first code builds the model's state
                        times.append(time.perf_counter() - t)
            t = time.perf_counter()
            composer.key(".")  # ends the phrase: all the session's words, converted together
            marks.append(time.perf_counter() - t)
        us = np.array(times) * 1e6
        print(f"{name}: lookahead {predictor.lookahead}; a key that completes a code: median "
              f"{np.median(us):,.0f} µs, p90 {np.percentile(us, 90):,.0f} µs ({len(us)} keys); the mark that converts "
              f"a phrase of {args.words} words: median {np.median(marks) * 1e3:,.1f} ms, p90 "
              f"{np.percentile(marks, 90) * 1e3:,.1f} ms")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except UserError as e:  # a model directory or dataset that cannot be read: one line, as the CLI says it
        raise SystemExit(f"{Path(__file__).name}: error: {e}") from None
