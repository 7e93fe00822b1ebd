"""`jax-llm ime ...` subcommands. The core CLI calls `add_parser` and dispatches to `args.func`."""

import argparse

from jax_llm.ime import serve, type_session


def add_parser(subparsers) -> None:
    ime = subparsers.add_parser("ime", help="first-two-character input method")
    ime_sub = ime.add_subparsers(dest="ime_command", metavar="COMMAND", required=True)
    type_session.add_parser(ime_sub)  # jax-llm ime type: as-you-type terminal / pipe
    serve.add_parser(ime_sub)  # jax-llm ime serve: web page and JSON API
    del ime_sub  # subcommands are registered here as they land
