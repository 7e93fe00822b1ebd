"""jax-llm: pretrain a GPT from one text file; sample from it; the first-two-character input method.

Subcommands only parse, call library functions and print.
"""

import argparse
import signal
import sys
from pathlib import Path

from jax_llm.errors import UserError


def cmd_train(args) -> int:
    from jax_llm.datasets import text_path
    from jax_llm.parallel import start_distributed
    from jax_llm.pretrain import pretrain
    from jax_llm.rundir import RunDir, resolve_config

    start_distributed(args.coordinator, args.num_processes, args.process_id, args.init_timeout, args.heartbeat_timeout)
    flags = [f"{k}={v}" for k, v in (("tokenizer", args.tokenizer), ("bpe_vocab_size", args.vocab_size),
                                      ("max_steps", args.max_steps)) if v is not None]
    run, overrides, source = RunDir(args.out), flags + args.set, None
    if args.init_from and not (args.resume and run.has_checkpoints()):  # a resumed run's checkpoint wins
        from jax_llm.hf import Checkpoint

        source = Checkpoint(args.init_from)
        overrides = overrides if args.resume else source.overrides(overrides)
    cfg = resolve_config(run, args.resume, args.preset, overrides)
    pretrain(text_path(args.text_file), run.path, cfg, resume=args.resume, quiet=args.quiet,
             warm_start=source and source.warm_start)
    return 0


def cmd_generate(args) -> int:
    from jax_llm.pretrain import load_run
    from jax_llm.sample import generate

    if args.max_new_tokens < 1 or args.temperature < 0 or args.top_k < 0 or not 0 < args.top_p <= 1:
        raise UserError("need --max-new-tokens >= 1, --temperature >= 0, --top-k >= 0, 0 < --top-p <= 1")
    cfg, tok, model, _ = load_run(Path(args.run_dir))
    prompt = tok.encode(args.prompt).ids if args.prompt else []
    if not prompt:
        prompt = tok.encode("\n").ids
    ids = generate(model, prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    print(tok.decode(ids))
    return 0


def cmd_export(args) -> int:
    from jax_llm.hf import export

    step = export(Path(args.run_dir), Path(args.out))
    print(f"exported {args.run_dir} (step {step}) to {args.out}: transformers' GPT2LMHeadModel and its tokenizer")
    return 0


def cmd_presets(args) -> int:
    from jax_llm.config import FAMILIES, PRESETS, RunConfig

    print(RunConfig().to_json())
    for name, keys in FAMILIES.items():
        print(f"\narch={name}: " + ", ".join(f"{k}={v}" for k, v in keys.items()))
    for name, overrides in PRESETS.items():
        print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from jax_llm.datasets import DEFAULT_TEXT, names
    from jax_llm.ime import cli as ime_cli

    parser = argparse.ArgumentParser(prog="jax-llm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a tokenizer and a GPT on one text file")
    p.add_argument("text_file", nargs="?", default=DEFAULT_TEXT,
                   help=f"UTF-8 text file (any language), or a named dataset, downloaded once and checked by "
                        f"sha256: {', '.join(names())} (default: {DEFAULT_TEXT}, embedded in the package: "
                        f"no download; aozora[:modern][:authors=A,B][:died-before=YEAR]: docs/gpu.md)")
    p.add_argument("--out", required=True, help="run directory (config, tokenizer, checkpoints, metrics)")
    p.add_argument("--preset", help="tiny | baby | aozora-cpu | shakespeare-char | gpt-80m | gpt2-124m")
    p.add_argument("--tokenizer", help="bpe (default), char, or a tokenizer.json path")
    p.add_argument("--vocab-size", type=int, help="BPE vocabulary size (default 8192)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set n_layer=6 (see `jax-llm presets`)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--init-from", metavar="HF_DIR", help="start from a local GPT-2 or NanoChat checkpoint "
                                                         "(transformers' save_pretrained output): its shape, weights, tokenizer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("several processes (hosts); from the environment or SLURM when not given")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address (env JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=int, metavar="N", help="env JAX_NUM_PROCESSES")
    g.add_argument("--process-id", type=int, metavar="I", help="0..N-1 (env JAX_PROCESS_ID)")
    g.add_argument("--init-timeout", type=int, default=300, metavar="S",
                   help="seconds to wait for every process to join (default 300)")
    g.add_argument("--heartbeat-timeout", type=int, default=100, metavar="S",
                   help="seconds of silence after which a process counts as dead and all stop (default 100)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="sample text from a run directory")
    p.add_argument("run_dir")
    p.add_argument("--prompt", default="")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="write a run as a Hugging Face transformers model directory")
    p.add_argument("run_dir")
    p.add_argument("--to", choices=["hf"], required=True, help="hf: GPT2LMHeadModel, safetensors, fast tokenizer")
    p.add_argument("out", help="a new or empty directory")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("presets", help="show the default config and the presets")
    p.set_defaults(func=cmd_presets)

    ime_cli.add_parser(sub)
    return parser


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # what `kill`, SLURM and Docker send: the same as Ctrl-C
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"jax-llm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jax-llm: interrupted", file=sys.stderr)
        return 130
