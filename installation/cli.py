"""`newsnow`: the one command line of the table, the operators and the curators.

Each area of the project contributes its subcommands through a module with a
`register(subparsers)` function. Those modules only build argparse parsers; the
work (and heavy imports such as torch) happens inside the handlers, so that
`newsnow --help` and the kiosk commands start fast and never need torch.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Modules that add subcommands, in the order `newsnow --help` lists them.
COMMAND_MODULES = [
    "installation.commands",  # demo, run, bench
    "training.commands",  # train kanjivg|ingest|gan|sketches|encoder|all|ddpm
    "inference.commands",  # export
    "training.imports.commands",  # import (pSp, e4e, researchers' generators)
    "kiosk.commands",  # status, doctor
    "calibration.commands",  # calibrate sheet, camera, projector, check
    "capture.commands",  # camera check, record
    "training.editing.commands",  # edit directions|grid
    "training.editing.hspace_commands",  # hspace train-ddpm|sample|pca|jacobian|supervised|edit
]


def version() -> str:
    """The installed newsnow's version (from its package metadata; no torch, no table)."""
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("newsnow")
    except PackageNotFoundError:
        return "unknown (not installed: `pip install -e .`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsnow",
        description="New Snow drawing table: run the table, calibrate it, retrain its models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"newsnow {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """A command's --help opens with what it does: its one-line help where no longer
    description was written."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    text = helps[name]
                    sub.description = text[0].upper() + text[1:] + "."
                _describe(sub)


def main(argv: list[str] | None = None) -> int:
    # pygame prints a banner on import, which would corrupt `--json` output and the logs.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (ValueError, OSError, FloatingPointError) as exc:
        # Bad input (a config field, a bundle file, a device) or a training run that went
        # NaN: every package raises these classes with a message that names the thing and
        # the fix. Anything else is a bug and keeps its traceback.
        if args.verbose:
            raise
        print(f"newsnow {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
