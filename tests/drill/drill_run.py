"""Running `renkei drill` as a process, as an operator does, and reading its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_drill(
    tmp: Path, *args: str, pythonpath: Path | None = None, timeout: float = 1200
) -> tuple[int, dict[str, Any], str]:
    env = dict(os.environ)
    if pythonpath is not None:  # a mutation: its sitecustomize.py reaches every process
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    html = tmp / "drill.html"
    done = subprocess.run(
        [sys.executable, "-m", "renkei", "drill", "--profile", "short", "--json",
         "--dir", str(tmp / "run"), "--html", str(html), *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON (exit {done.returncode}): {done.stderr[-3000:]}") from None
    return done.returncode, report, done.stderr


def rows_of(report: dict[str, Any], town: str) -> dict[int, dict[str, Any]]:
    return {row["row"]: row for row in report["towns"][town]["rows"]}
