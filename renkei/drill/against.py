"""`renkei drill --against URL`: the yearly drill against a real federation — in drill
mode only, so that a drill never touches real records or a real number series.

Two guards, both refusing with `NotDrillMode`:

1. before anything is sent but a health check: the box must say it runs in drill mode
   (`GET /api/health` → `"mode": "drill"`: synthetic drill residents, every copy a
   「見本」, the drill number series of shared/issuance/drill.py);
2. every document the drill receives must be a drill copy: a 発行番号 of the drill series
   (prefix `D`) and the 「見本」 mark on the page. The first live document stops the drill.

The operators inject the failure themselves (pull the line, stop the town hall's box) and
name the case with `--case`; the drill then checks that case's rows at the box it is
pointed at, with the clerks and subject residents of `--credentials FILE`:

    {"clerks": [{"town": "15307", "login_id": "…", "password": "…"}],
     "subjects": {"15307": {"resident_id": "…", "kana": "…", "name": "…"}}}
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from shared.issuance.drill import is_drill_number


class NotDrillMode(Exception):
    """The target is not a federation in drill mode (the message says what was seen)."""


def require_drill_mode(url: str, ca_file: Path | None = None) -> dict[str, Any]:
    """Guard 1: refuse unless the box at `url` declares drill mode."""
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/health", timeout=10, verify=verify)
        health = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise NotDrillMode(f"{url} の状態を確認できません: {exc}") from exc
    if not isinstance(health, dict) or health.get("mode") != "drill":
        mode = health.get("mode", "（表示なし）") if isinstance(health, dict) else "?"
        raise NotDrillMode(
            f"{url} は訓練モードではありません（mode={mode}）。実際の記録と発行番号を守るため、"
            "訓練は訓練モードの連携ボックスにだけ実行します。"
        )
    return health


def require_drill_document(number: str, page_text: str) -> None:
    """Guard 2: a document received during a drill must be a drill copy."""
    if not is_drill_number(number):
        raise NotDrillMode(
            f"訓練中に通常の発行番号 {number!r} の文書が交付されました。訓練を中止します。"
        )
    if "見本" not in page_text:
        raise NotDrillMode(
            f"発行番号 {number} の文書に「見本」の表示がありません。訓練を中止します。"
        )


def load_credentials(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not data.get("clerks") or not data.get("subjects"):
        raise ValueError(f"{path}: clerks と subjects が必要です")
    return data


def run_against(
    url: str,
    credentials: dict[str, Any],
    situation: str,
    *,
    ca_file: Path | None = None,
    budget_scale: float = 1.0,
    say: Any = print,
) -> Any:
    """Check one case's login, issuance and timing rows at the box at `url`, after the
    drill-mode guard. Returns the `Drill` holding the rows (for the report)."""
    import time

    from renkei.drill import pdfcheck
    from renkei.drill.client import Counter, FlowError
    from renkei.drill.evidence import Check
    from renkei.drill.rows import JUMINHYO, issuance_row
    from renkei.drill.scenario import Drill

    towns = tuple(sorted({c["town"] for c in credentials["clerks"]}))
    drill = Drill(fed=None, towns=towns, cases=(situation,), budget_scale=budget_scale, say=say)  # type: ignore[arg-type]
    drill.started = time.time()
    try:
        health = require_drill_mode(url, ca_file)
        say(f"{url}: 訓練モード（{health.get('town', '?')}）を確認しました")
        login_row = {"case1": 9, "case2": 19, "case3": 29}[situation]
        for clerk in credentials["clerks"]:
            town = clerk["town"]
            subject = credentials["subjects"][town]
            with Counter(url, ca_file) as counter:
                check = drill.row(town, login_row).add(Check("いつものIDとパスワード"))
                if counter.login_check(check, town, clerk["login_id"], clerk["password"]) is None:
                    continue
                issued_check = Check("住民票（見本）の交付")
                drill.row(town, issuance_row(situation, JUMINHYO).number).add(issued_check)
                try:
                    issued = counter.issue(
                        "juminhyo", subject["resident_id"], subject["kana"], subject["name"]
                    )
                except FlowError as exc:
                    issued_check.see("refusal", str(exc))
                    issued_check.ok(False, str(exc))
                    continue
                text = pdfcheck.document_evidence(
                    issued_check, "住民票（見本）", issued.number, issued.pdf, issued.seconds
                )
                require_drill_document(issued.number, text)
                drill.times[town].setdefault(situation, {})[JUMINHYO] = issued.seconds
            drill._timing(town, situation)
    finally:
        drill.finished = time.time()
    return drill
