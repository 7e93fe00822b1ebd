"""`jax-llm ime ...` subcommands. The core CLI calls `add_parser` and dispatches to `args.func`."""

import argparse
import sys
import time
from pathlib import Path

from jax_llm.errors import UserError
from jax_llm.ime.apps import serve, terminal, userdict
from jax_llm.ime.language.keys import IN_SHORT
from jax_llm.ime.transformer import cli as transformer_cli

CONVERT_HELP = """Converts typed keys into text, first online (each word is chosen knowing only its own and
the earlier codes; earlier choices are the context), in the typing language of `jax-llm ime type`. A key
that does nothing (an unknown character, a digit with no such candidate) is refused: one line on stderr,
exit status 2. A code no known word has is shown as [xy?] and the conversion goes on. A model trained
with `--lookahead K` ranks each word accepted by typing on again as the next K codes come, and may
replace it. Each phrase, ended by . , ; : ! ?, a new line, a tab or the end of the keys, is then converted again
as a whole (its words typed on decoded together, the words picked or spelled kept; --top-k still shows the
candidates ranked before that). Nothing is learnt, and the user dictionary is not read: the model alone converts. """ + IN_SHORT


def add_parser(subparsers) -> None:
    ime = subparsers.add_parser("ime", help="first-two-character input method")
    ime_sub = ime.add_subparsers(dest="ime_command", metavar="COMMAND", required=True)
    _add_ngram_commands(ime_sub)  # jax-llm ime train-ngram / eval / convert: n-grams and the harness
    terminal.add_parser(ime_sub)  # jax-llm ime type: as-you-type terminal / pipe
    serve.add_parser(ime_sub)  # jax-llm ime serve: web page and JSON API
    userdict.add_parser(ime_sub)  # jax-llm ime dict list / forget: the user dictionary
    transformer_cli.add_parser(ime_sub)  # jax-llm ime train / export-words: the Transformer


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True,
                   help="shakespeare, tinyshakespeare, wikitext2, wikitext2-test, or a text file path")
    p.add_argument("--data-dir", help="offline mirror of the datasets (default: $JAX_LLM_DATA_DIR), "
                   "laid out like ../shared/data; otherwise they are downloaded, checked and cached")
    p.add_argument("--whole-file-vocab", action="store_true",
                   help="build the word vocabulary from the whole file, as the published study did "
                   "(default: train split only; unseen test words count as errors)")


def _add_ngram_commands(sub) -> None:
    p = sub.add_parser("train-ngram", help="train a backoff or Kneser-Ney n-gram model",
                       description="Train on the first 90%% of the words and save a model directory.")
    _data_args(p)
    p.add_argument("--model", required=True, choices=["backoff", "kn"])
    p.add_argument("--order", type=int, help="backoff: the order (default 6); kn: the highest order "
                   "tried (default 4; the orders used are tuned on a dev slice of train)")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="the study's table: train/test accuracy, top-3/5, OOV, µs/prediction",
                       description="Score models with the harness (jax_llm.ime.study.evaluate) on the 90/10 split.")
    _data_args(p)
    p.add_argument("--model", required=True, action="append",
                   help="backoff or kn (trained here on the train split), or a model directory (n-gram or "
                        "Transformer); give it several times to put their rows in one table")
    p.add_argument("--orders", help="orders to tabulate, e.g. 1-6 or 2,4 (default: backoff 1-6; kn: its "
                   "tuned orders in three settings: codes only, confirmed words, words + cache)")
    p.add_argument("--json", type=Path, help="write the rows as JSON here (and markdown beside it, .md)")
    p.add_argument("--markdown", type=Path, help="write the markdown table here")
    p.add_argument("--no-train-acc", action="store_true", help="skip train accuracy (slow for kn)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("convert", help="convert typed codes into words", description=CONVERT_HELP)
    p.add_argument("codes", help='e.g. "fitwchinme", "fi tw ch in me" or "Ca me /Ishmael."')
    p.add_argument("--model", default="kn", help="model directory, or kn / backoff: that model trained on "
                   "shakespeare, cached after the first use (default: kn)")
    p.add_argument("--top-k", type=int, default=1, help="show this many candidates per word")
    p.set_defaults(func=cmd_convert)


def _corpus_and_vocab(args):
    from jax_llm.ime.language.words import Vocab, load_corpus

    corpus = load_corpus(args.dataset, args.data_dir)
    vocab = Vocab.build(corpus.words if args.whole_file_vocab else corpus.train)
    return corpus, vocab


def cmd_train(args) -> int:
    from jax_llm.ime import ngram

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a directory")
    corpus, vocab = _corpus_and_vocab(args)
    t, cpu = time.perf_counter(), time.process_time()
    model = ngram.train(args.model, corpus.train, vocab, args.order, log=lambda s: print(s, file=sys.stderr))
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    ngram.save(model, args.out, {"dataset": args.dataset, "vocab": "whole file" if args.whole_file_vocab else "train",
                                 "train_words": corpus.n_train, "train_seconds": round(seconds, 2),
                                 "train_cpu_seconds": round(cpu, 2)})
    detail = f"order {model.order}" if args.model == "backoff" else model.label[1]
    print(f"trained {args.model} ({detail}) on {corpus.n_train:,} words of {args.dataset} in {seconds:.1f} s "
          f"({cpu:.1f} s CPU) -> {args.out}")
    return 0


def _orders(spec: str | None, default: list[int]) -> list[int]:
    if spec is None:
        return default
    try:
        out = []
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            out += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise UserError(f"--orders {spec!r}: expected e.g. 1-6 or 2,4") from None
    if not out or min(out) < 1:
        raise UserError(f"--orders {spec!r}: orders are 1 or more")
    return out


def cmd_eval(args) -> int:
    from jax_llm.ime.study import evaluate

    corpus, vocab = _corpus_and_vocab(args)
    rows, say = [], (lambda s: print(s, file=sys.stderr))
    run = lambda m, name, order: rows.append(  # noqa: E731
        evaluate.score(m, corpus, name, order, train_acc=not args.no_train_acc))
    if args.orders and any(m not in ("backoff", "kn") for m in args.model):
        raise UserError("--orders applies to --model backoff or kn, not to a model directory")
    for spec in args.model:
        _eval_model(spec, args, corpus, vocab, run, say)
    title = f"{args.dataset}: {corpus.n_train:,} train / {len(corpus.test):,} test words, vocabulary from " \
            f"{'the whole file' if args.whole_file_vocab else 'train'} ({len(vocab) - 1:,} words)"
    text = evaluate.table(rows, title)
    print(text, end="")
    md = args.markdown or (args.json.with_suffix(".md") if args.json else None)
    evaluate.write_reports(rows, {"dataset": args.dataset, "vocab": "whole file" if args.whole_file_vocab else "train",
                                  "n_vocab": len(vocab) - 1}, args.json, md, title)
    return 0


def _eval_model(spec, args, corpus, vocab, run, say) -> None:
    from jax_llm.ime import ngram
    from jax_llm.ime.predictor import load_predictor

    t = time.perf_counter()
    if spec == "backoff":
        orders = _orders(args.orders, list(range(1, 7)))
        full = ngram.Backoff.train(corpus.train, vocab, max(orders))
        say(f"trained backoff order {max(orders)} in {time.perf_counter() - t:.1f} s")
        for n in orders:
            run(full.truncated(n), "backoff", str(n))
    elif spec == "kn":
        orders = _orders(args.orders, [])
        model = ngram.train_kn(corpus.train, vocab, max(orders, default=4), log=say)
        say(f"trained kn in {time.perf_counter() - t:.1f} s")
        if orders:
            for n in orders:
                run(model.with_config(code_order=n, word_order=n), "kn words+cache", str(n))
        else:
            for context in ngram.CONTEXTS:
                m = model.with_config(context=context)
                run(m, f"kn {context}", m.label[1])
    else:
        model = load_predictor(spec)
        name, settings = model.label
        run(model, f"{name} ({spec})", settings)


def cmd_convert(args) -> int:
    from jax_llm.ime.apps.composer import check_keys, compose
    from jax_llm.ime.predictor import load_predictor

    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    check_keys(args.codes)  # bad input fails before a model is loaded
    composer = compose(args.codes, load_predictor(args.model), k=args.top_k)
    print(composer.text())
    if args.top_k > 1:
        for t in composer.tokens:
            if t.kind == "word":
                print(f"{t.code.strip():>2}  " + (" | ".join(w for w, _ in t.candidates[:args.top_k]) or t.word))
    return 0
