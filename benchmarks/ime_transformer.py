"""Reproduce the FTCIM Transformer study with the jax-llm engine, beside the n-gram models.

For each dataset: the n-gram rows (backoff n=2, the published best on test; kn), the block-size sweep of
the published setting (codes only; with our candidate restriction), and the variants of the best
configuration: restriction off, confirmed words, own predictions as context, warm start from a
word-level language model trained by `jax-llm train`, and the product with kn. Prints one markdown
table per dataset and writes them (and JSON) under --out.

CPU budget: small models (ime-small: 2 layers, 128 dims) and a fixed number of training tokens per run,
so the whole script fits in about an hour on 2 cores; `--steps` scales every run.

    python benchmarks/ime_transformer.py --data-dir ../shared/data --out benchmarks/results/ime
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jax

from jax_llm.ime import ngram
from jax_llm.ime.transformer import train as transformer_train
from jax_llm.ime.transformer.predictor import TransformerPredictor
from jax_llm.ime.combine import Ensemble
from jax_llm.ime.language.codes import word_code
from jax_llm.ime.study.evaluate import Row, score, table
from jax_llm.ime.predictor import convert_codes
from jax_llm.ime.language.words import Vocab, load_corpus

TOKENS_PER_STEP = 1024  # batch = TOKENS_PER_STEP / block, so every block size trains on as many positions


def transformer(corpus, out: Path, block: int, steps: int, sets=(), **kw):
    rows = max(TOKENS_PER_STEP // block, 1)
    sets = [f"block_size={block}", f"batch_size={rows}", f"max_steps={steps}", f"eval_interval={steps}",
            f"ckpt_interval={steps}", *sets]
    t = time.perf_counter()
    transformer_train.train(corpus, out, "ime-small", sets, quiet=True, **kw)
    return TransformerPredictor(out), time.perf_counter() - t


def own_context_accuracy(predictor, corpus, limit: int) -> float:
    """Top-1 on the first `limit` test words when each context word is the model's own top-1 choice."""
    test = corpus.test[:limit]
    steps = convert_codes([word_code(w) for w in test], predictor)
    return sum(s.word == w for s, w in zip(steps, test)) / len(test)


def run_dataset(name: str, args, out: Path) -> list[Row]:
    corpus = load_corpus(name, args.data_dir)
    vocab = Vocab.build(corpus.train)
    rows: list[Row] = []

    def add(row: Row, seconds: float | None = None):
        rows.append(row)
        extra = f" (trained in {seconds:.0f} s)" if seconds is not None else ""
        print(f"  {row.model:<44} {row.order:>8}  test {row.test_acc:.3f}  top-5 {row.top5:.3f}{extra}", flush=True)

    kn = ngram.train("kn", corpus.train, vocab)
    add(score(ngram.train("backoff", corpus.train, vocab, 2), corpus, "backoff (published baseline)", "2",
              train_acc=args.train_acc))
    add(score(kn, corpus, "kn (confirmed words + cache)", "tuned", train_acc=args.train_acc))

    steps = args.steps
    for block in args.blocks:
        p, s = transformer(corpus, out / f"codes-b{block}", block, steps, confirmed=False)
        add(score(p, corpus, "transformer, codes only", f"b{block}", train_acc=args.train_acc), s)
    best = args.best_block
    p, s = transformer(corpus, out / f"codes-unrestricted-b{best}", best, steps, confirmed=False, restricted=False)
    add(score(p, corpus, "transformer, codes only, unrestricted", f"b{best}", train_acc=args.train_acc), s)
    p, s = transformer(corpus, out / f"confirmed-b{best}", best, 2 * steps)
    add(score(p, corpus, "transformer, confirmed words", f"b{best}", train_acc=args.train_acc), s)
    own = own_context_accuracy(p, corpus, args.own_limit)
    print(f"  own predictions as context: top-1 {own:.3f} on the first {args.own_limit} test words", flush=True)
    rows[-1].__dict__["own_context_top1"] = own
    add(score(Ensemble(p, kn), corpus, "transformer x kn (product)", f"b{best}", train_acc=False))
    if args.warm_start:
        words_dir, lm = out / "words", out / f"lm-b{best}"
        text, tok = transformer_train.export_words(corpus, words_dir)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jax_llm", "train", str(text), "--tokenizer", str(tok), "--out", str(lm),
                        "--preset", "ime-small", "--quiet", "--max-steps", str(2 * steps),
                        "--set", f"block_size={best}", "--set", f"batch_size={TOKENS_PER_STEP // best}",
                        "--set", "sample_tokens=0", "--set", f"eval_interval={2 * steps}"], check=True)
        lm_s = time.perf_counter() - t
        p, s = transformer(corpus, out / f"warm-b{best}", best, 2 * steps, warm_start=lm)
        add(score(p, corpus, "transformer, confirmed words, warm start", f"b{best}", train_acc=args.train_acc),
            s + lm_s)
        add(score(Ensemble(p, kn), corpus, "transformer (warm) x kn (product)", f"b{best}", train_acc=False))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["shakespeare", "tinyshakespeare", "wikitext2-test"])
    ap.add_argument("--blocks", nargs="+", type=int, default=[4, 8, 16, 32, 64])
    ap.add_argument("--best-block", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600, help="training steps of a sweep run (best runs: twice)")
    ap.add_argument("--own-limit", type=int, default=5000)
    ap.add_argument("--no-warm-start", dest="warm_start", action="store_false")
    ap.add_argument("--train-acc", action="store_true", help="also score the train split (slow)")
    ap.add_argument("--data-dir", default=os.environ.get("JAX_LLM_DATA_DIR"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ime"))
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    report = {}
    for name in args.datasets:
        print(f"{name}:", flush=True)
        t = time.perf_counter()
        rows = run_dataset(name, args, args.out / name)
        report[name] = [asdict(r) | {k: v for k, v in r.__dict__.items() if k not in asdict(r)} for r in rows]
        md = table(rows, f"{name} (test split; {time.perf_counter() - t:.0f} s for this dataset)")
        print(md, flush=True)
        (args.out / f"{name}.md").write_text(md)
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
