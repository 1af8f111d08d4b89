"""`renkei gen`: write the synthetic federation as the core systems' nightly export.

    renkei gen --out /tmp/export                    # the three towns, seed 1
    renkei gen --seed 7 --out DIR --residents 500000  # 聖籠町 scaled for a benchmark

Output is one folder per town code (see `shared.export_csv`); the same arguments give
byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gen",
        help="generate the synthetic three-town export (CSV folders)",
        description="Generate the synthetic federation (聖籠町, 出雲崎町, 関川村) and write it "
        "as the core systems' export: one folder per town code under --out.",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--residents",
        type=int,
        default=None,
        metavar="N",
        help="scale one town (default 聖籠町 15307) to N living residents, for benchmarks",
    )
    parser.add_argument(
        "--town",
        default="15307",
        metavar="CODE",
        help="town code that --residents scales (15307, 15405 or 15581)",
    )
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="YYYY-MM-DD",
        help="date the data is current as of (default 2026-11-26)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cloud.synthetic import DEFAULT_AS_OF, TOWN_CODES, generate
    from shared.export_csv import ExportError, write_export

    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else DEFAULT_AS_OF
    except ValueError:
        print(f"renkei gen: --as-of must be YYYY-MM-DD, got {args.as_of!r}", file=sys.stderr)
        return 1
    if args.town not in TOWN_CODES:
        print(f"renkei gen: --town must be one of {', '.join(TOWN_CODES)}", file=sys.stderr)
        return 1
    overrides: dict[str, int] = {}
    if args.residents is not None:
        if args.residents < 1:
            print("renkei gen: --residents must be at least 1", file=sys.stderr)
            return 1
        overrides[args.town] = args.residents
    started = time.perf_counter()
    exports = generate(args.seed, overrides, as_of)
    generated = time.perf_counter()
    try:
        write_export(exports, args.out)
    except (ExportError, OSError) as exc:
        print(f"renkei gen: could not write {args.out}: {exc}", file=sys.stderr)
        return 1
    written = time.perf_counter()
    for export in exports:
        living = sum(1 for r in export.residents if r.removal is None)
        print(
            f"{export.town.code} {export.town.name}: {living} residents "
            f"({len(export.residents) - living} 除票), {len(export.households)} households"
        )
    print(
        f"generated in {generated - started:.1f} s, written in {written - generated:.1f} s "
        f"to {args.out}"
    )
    return 0
