"""`jax-llm ime train` and `jax-llm ime export-words`: the Transformer side of the input method.

Kept apart from the rest of `transformer/` so that building the CLI imports no JAX.
"""

from pathlib import Path


def train_command(args) -> int:
    from jax_llm.ime.transformer.train import train
    from jax_llm.ime.language.words import load_corpus

    corpus = load_corpus(args.dataset, args.data_dir)
    sets = [f"block_size={args.block_size}"] if args.block_size is not None else []
    sets += [f"max_steps={args.max_steps}"] if args.max_steps is not None else []
    result = train(corpus, Path(args.out), args.preset, sets + args.set, confirmed=not args.codes_only,
                   restricted=not args.unrestricted, resume=args.resume, quiet=args.quiet, warm_start=args.warm_start,
                   lookahead=args.lookahead, whole_train=args.whole_train)
    dev = "dev loss (trained on)" if args.whole_train else "dev loss"
    print(f"trained {result.step} steps; {dev} {result.val_loss if result.val_loss is not None else float('nan'):.4f}; "
          f"model in {args.out} (evaluate: jax-llm ime eval --dataset {args.dataset} --model {args.out})")
    return 0


def export_words_command(args) -> int:
    from jax_llm.ime.transformer.train import export_words
    from jax_llm.ime.language.words import load_corpus

    text, tok = export_words(load_corpus(args.dataset, args.data_dir), Path(args.out))
    print(f"wrote {text} and {tok}; pretrain with:\n  jax-llm train {text} --tokenizer {tok} --out LM_DIR "
          f"--set n_layer=.. --set n_embd=..  (then: jax-llm ime train ... --warm-start LM_DIR)")
    return 0


def add_parser(ime_sub) -> None:
    p = ime_sub.add_parser("train", help="train the FTCIM Transformer with the jax-llm engine")
    p.add_argument("--dataset", required=True, help="shakespeare | tinyshakespeare | wikitext2 | wikitext2-test | PATH")
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--preset", default="ime-small", help="a config preset (ime-small, ime-base, or any of jax-llm's)")
    p.add_argument("--block-size", type=int, help="context length in words (the study: 4, 8, 16, 32, 64)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--codes-only", action="store_true",
                   help="the published setting: read codes only (default: codes + the previous confirmed word)")
    p.add_argument("--unrestricted", action="store_true",
                   help="score all words, not only those whose code is the typed one")
    p.add_argument("--lookahead", type=int, default=0, metavar="K",
                   help="delayed decision: word i is predicted once codes i+1..i+K are typed too (default 0: online)")
    p.add_argument("--whole-train", action="store_true",
                   help="train on the dev slice too (after choosing settings on it; its loss is then not held out)")
    p.add_argument("--warm-start", type=Path, metavar="LM_DIR",
                   help="initialise from a word-level language model (see `jax-llm ime export-words`)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--data-dir", help="offline corpus mirror (default: $JAX_LLM_DATA_DIR)")
    p.set_defaults(func=train_command)

    p = ime_sub.add_parser("export-words", help="write the train split and a word tokenizer for LM pretraining")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir")
    p.set_defaults(func=export_words_command)
