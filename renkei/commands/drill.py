"""`renkei drill`: the seed report's three failure cases and its 34 checks, run against a
local federation of real processes (or, with `--against`, a real federation in drill
mode), with measured recovery time, data loss and counter times.

Exit status: 0 when no row is ×, 1 when some row is × or the drill broke off, 2 when
`--against` refused a target that is not in drill mode. `--strict` also fails on 未検証.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

CASE_NAMES = {"1": "case1", "2": "case2", "3": "case3"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="run the seed report's drill: three failure cases, 34 checks per town, timed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=Path("var/drill"), help="working folder "
                        "(emptied at the start of a local drill)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic towns")
    parser.add_argument(
        "--profile", choices=("full", "short"), default="full",
        help="full: towns of their real size, clerks' passwords at the production KDF; "
        "short: small towns (the test suite's profile)",
    )  # fmt: skip
    parser.add_argument(
        "--network", choices=("auto", "netns", "loopback"), default="auto",
        help="where the local federation runs: netns puts the hub and each town hall in a "
        "network namespace of its own on a private LAN the drill creates and removes (needs "
        "root and iproute2); loopback runs everything on 127.0.0.1; auto (default) uses "
        "netns when a namespace can be created here, else loopback — the report says which",
    )  # fmt: skip
    parser.add_argument("--towns", default="15307,15405,15581", help="town codes, comma-separated")
    parser.add_argument("--cases", default="1,2,3", help="failure cases to run, e.g. 1,3")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write an HTML report")
    parser.add_argument(
        "--budget-scale", type=float, default=1.0,
        help="a document passes the response rows when it takes at most this times the "
        "report's figure (default 1)",
    )  # fmt: skip
    parser.add_argument("--strict", action="store_true", help="exit 1 on 未検証 rows too")
    parser.add_argument(
        "--against", metavar="URL",
        help="a box of a real federation, which must be in drill mode (refused otherwise)",
    )  # fmt: skip
    parser.add_argument("--credentials", type=Path, help="with --against: clerks and subjects")
    parser.add_argument("--case", choices=sorted(CASE_NAMES), default="1",
                        help="with --against: the case the operators have set up")  # fmt: skip
    parser.add_argument("--ca", type=Path, help="with --against: the federation CA certificate")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from renkei.drill import report as reports
    from renkei.drill.evidence import FAIL, UNVERIFIED

    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else _say
    if args.against:
        drill = _against(args, say)
        if drill is None:
            return 2
        mode = "against"
    else:
        try:
            drill = _local(args, say)
        except KeyboardInterrupt:
            print("訓練を中断しました（割り込み）。起動したプロセスと名前空間は片付けました",
                  file=sys.stderr)  # fmt: skip
            return 130
        mode = "local"
    report = reports.build(drill, mode=mode, profile=args.profile)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(reports.to_html(report), encoding="utf-8")
        say(f"HTML の報告: {args.html}")
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(reports.text(report))
    verdicts = {r["result"] for t in report["towns"].values() for r in t["rows"]}
    left_behind = (report.get("network") or {}).get("left")
    if report["error"] or left_behind or FAIL in verdicts:
        return 1
    if args.strict and UNVERIFIED in verdicts:
        return 1
    return 0


def _say(message: str) -> None:
    print(message, flush=True)


def _local(args: argparse.Namespace, say: Any) -> Any:
    from renkei.drill.federation import LocalFederation
    from renkei.drill.rows import TOWNS
    from renkei.drill.scenario import Drill

    towns = tuple(t for t in args.towns.split(",") if t)
    unknown = set(towns) - set(TOWNS)
    if unknown:
        raise SystemExit(f"unknown town codes: {sorted(unknown)}")
    cases = tuple(CASE_NAMES[c] for c in args.cases.split(",") if c)
    fed = LocalFederation(args.dir, seed=args.seed, short=args.profile == "short", say=say,
                          network=args.network, portable=towns)  # fmt: skip
    drill = Drill(fed, towns, cases, budget_scale=args.budget_scale, say=say)
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the drill's `finally` stops every process
    # and removes its network namespaces (atexit would not run on a signal's default).
    previous = {sig: signal.signal(sig, _interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        drill.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return drill


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _against(args: argparse.Namespace, say: Any) -> Any:
    from renkei.drill.against import NotDrillMode, load_credentials, run_against

    if args.credentials is None:
        raise SystemExit("--against needs --credentials FILE (clerks and drill subjects)")
    try:
        return run_against(
            args.against, load_credentials(args.credentials), CASE_NAMES[args.case],
            ca_file=args.ca, budget_scale=args.budget_scale, say=say,
        )  # fmt: skip
    except NotDrillMode as exc:
        print(f"訓練を実行しません: {exc}", file=sys.stderr)
        return None
