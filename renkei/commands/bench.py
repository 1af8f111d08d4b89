"""`renkei bench`: print named performance figures (the targets live here, not in tests)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from renkei.bench import GROUPS

    parser = subparsers.add_parser("bench", help="measure and print named performance figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, help="fix the synthetic seed (random by default)")
    parser.add_argument(
        "--only", action="append", choices=sorted(GROUPS), help="run only this group"
    )
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from renkei.bench import run as run_bench
    from renkei.bench import to_json

    result = run_bench(args.only, args.seed, args.quick)
    if args.json:
        print(to_json(result))
    else:
        for name, value in sorted(result.items()):
            print(f"{name:28} {value}")
    return 1 if "errors" in result else 0
