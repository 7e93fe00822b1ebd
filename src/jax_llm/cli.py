"""Command line: subcommands parse arguments, call library functions and print. Nothing else."""

import argparse
import sys

from jax_llm.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from jax_llm.ime import cli as ime_cli

    parser = argparse.ArgumentParser(prog="jax-llm", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ime_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"jax-llm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jax-llm: interrupted", file=sys.stderr)
        return 130
