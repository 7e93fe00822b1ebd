"""The input method's right context: one lookahead model read with K = 0..its K later codes, alone and with
its own cache (the online protocol), and the phrase protocol (`ime/study/phrases.py`) for it, its beam
search, and kn; on the dev slice (choosing) or the test split (once per chosen setting).

    python benchmarks/ime_rightctx.py --dataset shakespeare --run runs/sh-M-ahead3 --split dev
    python benchmarks/ime_rightctx.py --dataset shakespeare --run runs/sh-M-ahead3-whole --tune-with runs/sh-M-ahead3

On `--split dev` the models are scored on the last 10% of train (which `--run` must not have been trained
on); on `--split test` the test split, vocabulary from train. The own cache's weights are always chosen on
the dev slice with a run that never saw it (`--tune-with`, default `--run`). Figures, never a pass or fail.
"""

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import jax

from jax_llm.ime import ngram
from jax_llm.ime.combine import WithCache
from jax_llm.ime.language.words import Vocab, WordCorpus, load_corpus
from jax_llm.ime.modelfiles import read_meta
from jax_llm.ime.study.evaluate import score
from jax_llm.ime.study.phrases import score_phrases
from jax_llm.ime.study.tune import tune_cache
from jax_llm.ime.transformer.predictor import TransformerPredictor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--run", type=Path, required=True, help="a run of `jax-llm ime train [--lookahead K]`")
    ap.add_argument("--tune-with", type=Path, metavar="RUN", help="chooses the own cache's weights (dev held out)")
    ap.add_argument("--split", choices=["dev", "test"], default="test")
    ap.add_argument("--seen", type=int, nargs="+", help="later codes read (default 0..K)")
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 8], help="phrase protocol beam widths")
    ap.add_argument("--kn", action="store_true", help="kn words+cache rows too (online and phrase)")
    ap.add_argument("--kn-phrase-words", type=int, default=5000,
                    help="kn's phrase rows on the split's first N words (its beam search calls kn per hypothesis)")
    ap.add_argument("--no-phrase", action="store_true")
    ap.add_argument("--data-dir", default=os.environ.get("JAX_LLM_DATA_DIR"))
    ap.add_argument("--out", type=Path, help="write the rows here as JSON")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    full = load_corpus(args.dataset, args.data_dir)
    corpus = full if args.split == "test" else WordCorpus("dev", full.train, full.phrase_ends[: full.n_train])
    chooser_dir = args.tune_with or args.run
    if read_meta(chooser_dir).get("whole_train") or (args.split == "dev" and read_meta(args.run).get("whole_train")):
        ap.error(f"{chooser_dir if args.split == 'test' else args.run} saw the dev slice in training")
    k = TransformerPredictor(args.run).ahead
    rows = []

    def add(kind, row):
        rows.append({"kind": kind, **asdict(row)})
        if kind == "online":
            print(f"  online  {row.model:<44} top-1 {row.test_acc:.4f}  top-5 {row.top5:.4f}  keys saved "
                  f"{row.keys_saved:.4f}  {row.us_per_prediction:,.0f} µs", flush=True)
        else:
            print(f"  phrase  {row.model:<44} words {row.word_acc:.4f}  exact {row.exact:.4f}  keys saved "
                  f"{row.keys_saved:.4f}  ({row.phrases:,} phrases)", flush=True)

    words, start = corpus.words, corpus.n_train
    for seen in args.seen if args.seen is not None else range(k + 1):
        model = TransformerPredictor(args.run, seen=seen)
        add("online", score(model, corpus, f"{args.run.name} K={seen}", "", False))
        a, b, decay, dev_top1 = tune_cache(TransformerPredictor(chooser_dir, seen=seen), full.train)
        label = f"{args.run.name} K={seen}"
        cached = WithCache(model, a, b, decay)
        add("online", score(cached, corpus, f"{label} + own cache {a}/{b}/{decay}", "", False))
        if not args.no_phrase and seen in (0, k):
            for beam in args.beams:
                add("phrase", score_phrases(model, words, corpus.phrase_ends, start, f"{label} beam {beam}", beam))
                add("phrase", score_phrases(cached, words, corpus.phrase_ends, start,
                                            f"{label} + own cache beam {beam}", beam))
    if args.kn:
        kn = ngram.train_kn(corpus.train, Vocab.build(corpus.train)).with_config(context="words+cache")
        add("online", score(kn, corpus, "kn words+cache", "", False))
        stop = start + args.kn_phrase_words
        for beam in args.beams if not args.no_phrase else ():
            add("phrase", score_phrases(kn, words[:stop], corpus.phrase_ends[:stop], start,
                                        f"kn words+cache beam {beam}, first {args.kn_phrase_words:,} words", beam))
    print(f"{args.split}: {len(corpus.test):,} words; {time.perf_counter() - t0:.0f} s", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dataset": args.dataset, "split": args.split, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
