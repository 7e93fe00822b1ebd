"""The input-method results table for one dataset: n-gram and Transformer rows, codes-only and with
confirmed words, the Transformer's own cache and its mixture with kn, each with top-1/3/5 and keystroke
savings, on the test split (vocabulary from train, online).

    python benchmarks/ime_study.py --dataset shakespeare --transformer runs/ime-sh [--codes-only runs/ime-sh-c]

The Transformer runs are made by `jax-llm ime train` (trained on train minus its dev slice, or with
`--whole-train` on all of it). The own cache's weight and window, and the mixture's weight, are chosen on
the dev slice (the last 10% of train) with models that never saw it: the Transformer as trained (or the
`--tune-with` run of the same settings, for a whole-train one), and a kn trained on the rest of train.
"""

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import jax

from jax_llm.errors import UserError
from jax_llm.ime import ngram
from jax_llm.ime.transformer.predictor import TransformerPredictor
from jax_llm.ime.language.codes import word_code
from jax_llm.ime.combine import Ensemble
from jax_llm.ime.modelfiles import read_meta
from jax_llm.ime.study.evaluate import hit_rates, score, table
from jax_llm.ime.combine import WithCache
from jax_llm.ime.study.tune import tune_cache
from jax_llm.ime.language.words import Vocab, WordCorpus, dev_split, load_corpus


def tune_combinations(transformer, corpus, mixtures=(0.2, 0.3, 0.4, 0.5, 0.6), products=(0.1, 0.25, 0.5, 1.0)):
    """{"mixture": (weight, dev top-1), "product": (weight, dev top-1)}: the Transformer's (with its own
    cache) share in its mixture with kn, and kn's exponent in their product, each chosen on the dev slice
    with a kn trained on the rest of train. Both models rank the dev slice once; only the merge is redone."""
    fit_words, _ = dev_split(corpus.train)
    kn_fit = ngram.train_kn(fit_words, Vocab.build(fit_words))
    dev = WordCorpus("dev", corpus.train)
    codes = [word_code(w) for w in dev.words]
    depth = Ensemble(transformer, kn_fit).depth
    rows_t = transformer.scored_split(codes, dev.words, depth, dev.n_train)
    rows_kn = kn_fit.scored_split(codes, dev.words, depth, dev.n_train)

    def top1(weight, mixture):
        merge = Ensemble(transformer, kn_fit, weight, mixture=mixture).merge
        return hit_rates([[w for w, _ in merge(a, b, 1)] for a, b in zip(rows_t, rows_kn)], dev.test, (1,))[1]

    return {"mixture": max(((w, top1(w, True)) for w in mixtures), key=lambda t: t[1]),
            "product": max(((w, top1(w, False)) for w in products), key=lambda t: t[1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--transformer", type=Path, required=True, help="a run of `jax-llm ime train` (confirmed words)")
    ap.add_argument("--codes-only", type=Path, help="a run of `jax-llm ime train --codes-only`")
    ap.add_argument("--tune-with", type=Path, metavar="RUN",
                    help="choose the cache and mixture weights with this run (same settings, dev slice held out): "
                         "needed when --transformer was trained with --whole-train")
    ap.add_argument("--rows", nargs="+", default=["ngram", "transformer", "cache", "mixture"],
                    help="which rows: ngram, transformer, cache, mixture (the mixture and the product with kn) (default: all)")
    ap.add_argument("--data-dir", default=os.environ.get("JAX_LLM_DATA_DIR"))
    ap.add_argument("--out", type=Path, help="write the rows here as JSON (and the table beside it, .md)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    corpus = load_corpus(args.dataset, args.data_dir)
    vocab = Vocab.build(corpus.train)
    rows, notes = [], {}

    def add(row):
        rows.append(row)
        print(f"  {row.model:<40} {row.order:>14}  top-1 {row.test_acc:.3f}  top-5 {row.top5:.3f}  "
              f"keys saved {row.keys_saved:.3f}", flush=True)

    if "ngram" in args.rows:
        add(score(ngram.train("backoff", corpus.train, vocab, 2), corpus, "backoff (published), codes only", "2",
                  False))
    if "ngram" in args.rows or "mixture" in args.rows:
        kn = ngram.train_kn(corpus.train, vocab)
    for context in ngram.CONTEXTS if "ngram" in args.rows else ():
        m = kn.with_config(context=context)
        add(score(m, corpus, f"kn {context}", m.label[1], False))
    if args.codes_only:
        add(score(TransformerPredictor(args.codes_only), corpus, "transformer, codes only",
                  args.codes_only.name, False))
    transformer = TransformerPredictor(args.transformer)
    chooser = TransformerPredictor(args.tune_with) if args.tune_with else transformer
    if read_meta(args.tune_with or args.transformer).get("whole_train"):
        ap.error(f"{args.tune_with or args.transformer} saw the dev slice in training: give --tune-with a run "
                 "that held it out")
    if "transformer" in args.rows:
        add(score(transformer, corpus, "transformer, confirmed words", args.transformer.name, False))
    if "cache" in args.rows or "mixture" in args.rows:
        a, b, decay, dev_top1 = tune_cache(chooser, corpus.train)
        notes["own_cache"] = {"code": a, "follow": b, "decay": decay, "dev_top1": dev_top1,
                              "chosen_with": str(args.tune_with or args.transformer)}
        cached = WithCache(transformer, a, b, decay)
    if "cache" in args.rows:
        add(score(cached, corpus, "transformer + own cache", f"{a}/{b}/{decay}", False))
    if "mixture" in args.rows:
        for kind, (weight, dev_top1) in tune_combinations(WithCache(chooser, a, b, decay), corpus).items():
            notes[kind] = {"weight": weight, "dev_top1": dev_top1}
            add(score(Ensemble(cached, kn, weight, mixture=kind == "mixture"), corpus,
                      f"{kind} (transformer + own cache) + kn", f"{weight} {'T' if kind == 'mixture' else 'kn'}",
                      False))
    md = table(rows, f"{args.dataset}: test split ({len(corpus.test):,} words), vocabulary from train")
    print(md + f"\nchosen on the dev slice: {json.dumps(notes)}\n{time.perf_counter() - t0:.0f} s", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dataset": args.dataset, "dev": notes, "rows": [asdict(r) for r in rows]},
                                       indent=1) + "\n")
        args.out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except UserError as e:  # a model directory or dataset that cannot be read: one line, as the CLI says it
        raise SystemExit(f"{Path(__file__).name}: error: {e}") from None
