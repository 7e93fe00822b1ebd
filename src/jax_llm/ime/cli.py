"""`jax-llm ime ...` subcommands. The core CLI calls `add_parser` and dispatches to `args.func`."""

import argparse


def add_parser(subparsers) -> None:
    ime = subparsers.add_parser("ime", help="first-two-character input method")
    ime_sub = ime.add_subparsers(dest="ime_command", metavar="COMMAND", required=True)
    del ime_sub  # subcommands are registered here as they land
