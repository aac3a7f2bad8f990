"""Entry point of the ``surf`` console script.

Every subcommand lives in its own module under ``surf_video.cli`` and exposes
``register(subparsers)``, which adds an argparse parser whose ``func`` default is
called with the parsed namespace. Add a module name to ``SUBCOMMANDS`` to add a command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

__all__ = ["build_parser", "main", "SUBCOMMANDS"]

# Module names under surf_video.cli, in the order `surf --help` lists them.
SUBCOMMANDS = [
    "generate",
    "mini",
    "degrade",
    "cache_latents",
    "train",
    "world",
    "web",
    "bench",
    "eval",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="surf",
        description="SURF: signature-retained fast video generation (preview at low resolution, then refine).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"surf_video.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        # Input errors are reported as one clear line, not a traceback.
        print(f"surf {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
