"""The `renkei` command: one entry point, one module per subcommand.

Each module in `renkei.commands` exposes `register(subparsers)` which adds its parser and
sets `func` to a callable taking the parsed namespace and returning an exit code. The
modules are discovered, so a subsystem adds a command by adding a module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from renkei import __version__


def command_modules() -> list[str]:
    package = importlib.import_module("renkei.commands")
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.ispkg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="renkei",
        description="Renkei (連携): offline-first continuity appliance for town halls.",
    )
    parser.add_argument("--version", action="version", version=f"renkei {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        module = importlib.import_module(f"renkei.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
