"""The drill's report: one structure (`build`), three renderings — text for the terminal,
JSON (`--json`) and a self-contained HTML page with inline SVG charts (`--html FILE`; no
script, no external file).

JSON shape (stable; tests/drill reads it):

    {"kind": "renkei-drill", "version": 1, "mode": "local" | "against", "profile",
     "started", "finished", "seconds", "error",
     "towns": {code: {"name", "summary": {"○": n, "×": n, "未検証": n},
                      "rows": [{"row", "group", "check", "renkei", "result", "seconds",
                                "seed_seconds", "checks": [{"name", "result", "reason",
                                "evidence": [{"kind", "text", "data"}]}]}]}},
     "times": {code: {situation: {document: {"measured": s | null, "seed": s}}}},
     "cases": [{"town", "situation", "host", "injected", "recovery_s", "human_steps",
                "data_loss_s", "edits_made", "edits_visible", "last_edit_before",
                "newest_visible", "hub_as_of", "shown_as_of", "note",
                "recovery_target_s", "recovery_ok", "data_loss_ok"}],
     "human_steps": {"count", "by_kind": {kind: n}, "steps": [...]},
     "targets": {"recovery_s": {case: s}, "data_loss_s": s},
     "network": {"requested", "mode": "netns" | "loopback", "note", "drill", "hub", "boxes",
                 "hosts": {name: {"namespace", "address"}}, "namespaces", "links", "left"}
                 | null (--against)}
"""

# ruff: noqa: E501 — the evidence and report lines are Japanese sentences, kept whole for grep

from __future__ import annotations

import html
import time
from collections import Counter as Tally
from typing import Any

from renkei.drill.evidence import FAIL, PASS, UNVERIFIED
from renkei.drill.rows import (
    DATA_LOSS_TARGET_S,
    DOCUMENT_LABELS,
    DOCUMENTS,
    RECOVERY_TARGET_S,
    ROW_BY_NUMBER,
    SEED_RECOVERY,
    SEED_SECONDS,
    SITUATION_LABELS,
    SITUATIONS,
    TOWN_NAMES,
)


def build(drill: Any, *, mode: str = "local", profile: str = "short") -> dict[str, Any]:
    raw = drill.to_json()
    towns: dict[str, Any] = {}
    for town in drill.towns:
        rows = []
        for result in [r for r in raw["rows"] if r["town"] == town]:
            row = ROW_BY_NUMBER[result["row"]]
            rows.append({"row": row.number, "group": row.group, "check": row.check,
                         "renkei": row.renkei, **{k: v for k, v in result.items()
                                                   if k not in ("row", "town")}})  # fmt: skip
        summary = Tally(r["result"] for r in rows)
        towns[town] = {
            "name": TOWN_NAMES[town],
            "summary": {v: summary.get(v, 0) for v in (PASS, FAIL, UNVERIFIED)},
            "rows": rows,
        }
    times = {
        town: {
            situation: {
                document: {
                    "measured": raw["times"].get(town, {}).get(situation, {}).get(document),
                    "seed": SEED_SECONDS[town][situation][document],
                }
                for document in DOCUMENTS
            }
            for situation in SITUATIONS
        }
        for town in drill.towns
    }
    cases = []
    for case in raw["cases"]:
        target = RECOVERY_TARGET_S[case["situation"]]
        recovery, loss = case["recovery_s"], case["data_loss_s"]
        cases.append({
            **case,
            "recovery_target_s": target,
            "recovery_ok": recovery is not None and recovery <= target,
            "data_loss_ok": loss is not None and loss <= DATA_LOSS_TARGET_S,
        })  # fmt: skip
    steps = raw["human_steps"]
    fed = getattr(drill, "fed", None)
    return {
        "kind": "renkei-drill",
        "version": 1,
        "mode": mode,
        "profile": profile,
        "started": _iso(drill.started),
        "finished": _iso(drill.finished),
        "seconds": round(drill.finished - drill.started, 1),
        "error": raw["error"],
        "towns": towns,
        "times": times,
        "cases": cases,
        "human_steps": {
            "count": len(steps),
            "by_kind": dict(Tally(s["kind"] for s in steps)),
            "steps": steps,
        },
        "targets": {"recovery_s": RECOVERY_TARGET_S, "data_loss_s": DATA_LOSS_TARGET_S},
        "network": fed.network_summary() if mode == "local" and fed is not None else None,
    }


def network_line(report: dict[str, Any]) -> str:
    net = report.get("network")
    if not net:
        return ""
    if net["mode"] == "netns":
        line = (f"ネットワーク: 名前空間（ハブ・町村ごとの役場 LAN、訓練端末 {net['drill']}、"
                f"ハブ {net['hub']}）")
    else:
        line = "ネットワーク: ループバック（127.0.0.1）" + (f" — {net['note']}" if net["note"] else "")
    if net["left"]:
        line += f"　後片付けに失敗: {', '.join(net['left'])}"
    for node in net.get("portable", []):
        line += (f"\n持ち運び端末 {node['node']}（{node['address']}）: 出発前に自庁の {node['home_entries']} 件を同期"
                 + (f"、{node['carried_to']} の LAN で {node['synced_s']} 秒で同期（送 {node['pushed']}・受 {node['pulled']} 件）"
                    if node["ok"] else f"、受入町村で未同期 {node['note']}"))
    if net["mode"] != "netns":
        line += "\n持ち運び端末: 名前空間でのみ動かします（この実行では使っていません）"
    return line


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at)) if at else ""


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------------------- text


def text(report: dict[str, Any]) -> str:
    lines = [f"連携 訓練報告（{report['mode']}、{report['profile']}）"
             f" {report['started']} 〜 {report['finished']}（{report['seconds']} 秒）"]  # fmt: skip
    if network_line(report):
        lines.append(network_line(report))
    if report["error"]:
        lines.append(f"中断: {report['error']}")
    for town, data in report["towns"].items():
        s = data["summary"]
        lines += [
            "",
            f"■ {data['name']}（{town}）  ○ {s[PASS]}  × {s[FAIL]}  未検証 {s[UNVERIFIED]}",
        ]
        for row in data["rows"]:
            timing = ""
            if row["seconds"] is not None or row["seed_seconds"] is not None:
                timing = f" [{_seconds(row['seconds'])} 秒／報告書 {row['seed_seconds']:.0f} 秒]"
            lines.append(
                f"{row['row']:>3} {row['result']:<4} {row['group']} {row['check']}{timing}"
            )
            for check in row["checks"]:
                first = check["evidence"][0]["text"] if check["evidence"] else check["reason"]
                mark = check["result"]
                lines.append(f"        {mark} {check['name']}: {first}"
                             + (f"（{check['reason']}）" if check["reason"] and mark != PASS
                                and check["evidence"] else ""))  # fmt: skip
    lines += ["", "■ 窓口の応答時間（検索→交付、秒。括弧内は報告書の値）"]
    for town, situations in report["times"].items():
        for document in DOCUMENTS:
            cells = [f"{SITUATION_LABELS[s][:6]} {_seconds(situations[s][document]['measured'])}"
                     f"({situations[s][document]['seed']:.0f})" for s in SITUATIONS]  # fmt: skip
            lines.append(
                f"  {TOWN_NAMES[town]:<5} {DOCUMENT_LABELS[document]:<6} " + "  ".join(cells)
            )
    lines += ["", "■ 復旧時間とデータ損失（人の操作時間・移動は含まない）"]
    for case in report["cases"]:
        lines.append(
            f"  {TOWN_NAMES[case['town']]:<5} {SITUATION_LABELS[case['situation']]}: "
            f"障害 {case['injected']} → 最初の証明書まで {_seconds(case['recovery_s'])} 秒"
            f"（目標 ≤ {case['recovery_target_s']:.0f} 秒 {'○' if case['recovery_ok'] else '×'}、"
            f"報告書 {SEED_RECOVERY[case['situation']]}）、人の操作 {case['human_steps']} 回、"
            f"データ損失 {_seconds(case['data_loss_s'])} 秒（編集 {case['edits_visible']}/"
            f"{case['edits_made']} 件が見える {'○' if case['data_loss_ok'] else '×'}）、"
            f"基幹系出力の時点 {case['hub_as_of']}（画面 {case['shown_as_of'] or '—'}）"
            + (f" {case['note']}" if case["note"] else "")
        )
    steps = report["human_steps"]
    lines += ["", f"■ 人の操作 {steps['count']} 回: " + "、".join(
        f"{_HUMAN.get(k, k)} {n}" for k, n in steps["by_kind"].items())]  # fmt: skip
    return "\n".join(lines)


_HUMAN = {
    "password": "パスワード入力",
    "activation_code": "代表者の利用開始コード",
    "supervisor_approval": "監督者の受付",
}


# ---------------------------------------------------------------------------- HTML


def to_html(report: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'>",
        "<title>連携 訓練報告</title><style>",
        "body{font-family:'IPAexGothic',sans-serif;margin:1.5em;max-width:70em}",
        "table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #999;",
        "padding:.2em .5em;vertical-align:top;font-size:.92em}",
        ".r○{background:#e3f4e3}.r×{background:#fbe0e0}.r未検証{background:#f3f0dc}",
        "details{margin:.1em 0}small{color:#555}",
        "</style></head><body>",
        f"<h1>連携 訓練報告</h1><p>{e(report['mode'])}・{e(report['profile'])}　"
        f"{e(report['started'])} 〜 {e(report['finished'])}（{report['seconds']} 秒）</p>",
        f"<p>{e(network_line(report))}</p>" if network_line(report) else "",
    ]
    if report["error"]:
        parts.append(f"<p class='r×'>中断: {e(report['error'])}</p>")
    parts.append("<h2>復旧時間（障害の注入 → 最初の証明書）</h2>")
    parts.append(recovery_chart(report))
    parts.append("<h2>窓口の応答時間（検索 → 交付）と報告書の値</h2>")
    parts.append(times_chart(report))
    parts.append(
        "<table><tr><th>町村</th><th>ケース</th><th>障害</th><th>受入</th><th>復旧（秒）</th>"
        "<th>人の操作</th><th>データ損失（秒）</th><th>編集</th><th>基幹系出力の時点</th></tr>"
    )
    for case in report["cases"]:
        parts.append(
            f"<tr><td>{e(TOWN_NAMES[case['town']])}</td><td>{e(SITUATION_LABELS[case['situation']])}</td>"
            f"<td>{e(case['injected'])}</td><td>{e(TOWN_NAMES[case['host']])}</td>"
            f"<td class='r{'○' if case['recovery_ok'] else '×'}'>{_seconds(case['recovery_s'])}"
            f" <small>≤ {case['recovery_target_s']:.0f}</small></td><td>{case['human_steps']}</td>"
            f"<td class='r{'○' if case['data_loss_ok'] else '×'}'>{_seconds(case['data_loss_s'])}</td>"
            f"<td>{case['edits_visible']}/{case['edits_made']}</td>"
            f"<td>{e(case['hub_as_of'])}<br><small>{e(case['shown_as_of'])}</small></td></tr>"
        )
    parts.append("</table>")
    for town, data in report["towns"].items():
        s = data["summary"]
        parts.append(
            f"<h2>{e(data['name'])}（{town}）— ○ {s[PASS]}・× {s[FAIL]}・未検証 {s[UNVERIFIED]}</h2>"
        )
        parts.append(
            "<table><tr><th>#</th><th>区分</th><th>確認項目</th><th>連携での意味</th>"
            "<th>結果</th><th>秒（報告書）</th><th>根拠</th></tr>"
        )
        for row in data["rows"]:
            timing = ""
            if row["seed_seconds"] is not None:
                timing = f"{_seconds(row['seconds'])}（{row['seed_seconds']:.0f}）"
            evidence = "".join(
                f"<details><summary>{e(c['result'])} {e(c['name'])}"
                f"{' — ' + e(c['reason']) if c['reason'] else ''}</summary><ul>"
                + "".join(f"<li><small>{e(x['kind'])}</small> {e(x['text'])}</li>"
                          for x in c["evidence"]) + "</ul></details>"
                for c in row["checks"]
            )  # fmt: skip
            parts.append(
                f"<tr class='r{e(row['result'])}'><td>{row['row']}</td><td>{e(row['group'])}</td>"
                f"<td>{e(row['check'])}</td><td>{e(row['renkei'])}</td><td>{e(row['result'])}</td>"
                f"<td>{timing}</td><td>{evidence}</td></tr>"
            )
        parts.append("</table>")
    steps = report["human_steps"]
    parts.append(f"<h2>人の操作（{steps['count']} 回）</h2><ul>")
    parts += [f"<li>{e(s['situation'])} {e(TOWN_NAMES.get(s['town'], s['town']))}: {e(s['label'])}</li>"
              for s in steps["steps"]]  # fmt: skip
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def _bar(x: float, y: float, w: float, h: float, fill: str, title: str) -> str:
    return (f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{max(h, 0.5):.1f}' "
            f"fill='{fill}'><title>{html.escape(title)}</title></rect>")  # fmt: skip


def times_chart(report: dict[str, Any]) -> str:
    """Grouped bars: per town and situation, each document's measured time beside the
    report's figure (hatched grey)."""
    towns = list(report["times"])
    groups = [(t, s) for t in towns for s in SITUATIONS]
    top = max([30.0] + [v["seed"] for t in towns for s in SITUATIONS
                        for v in report["times"][t][s].values()])  # fmt: skip
    width, height, left, bottom = 980, 300, 40, 60
    slot = (width - left) / max(1, len(groups))
    bar = slot / (2 * len(DOCUMENTS) + 1)
    scale = (height - bottom - 10) / top
    colours = {"juminhyo": "#2b6cb0", "tax": "#2f855a", "nhi": "#b7791f", "list": "#805ad5"}
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"role='img' aria-label='窓口の応答時間'>"]  # fmt: skip
    base = height - bottom
    for tick in range(0, int(top) + 1, 5):
        y = base - tick * scale
        out.append(
            f"<line x1='{left}' x2='{width}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>"
            f"<text x='{left - 4}' y='{y + 4:.1f}' font-size='10' text-anchor='end'>{tick}</text>"
        )
    for i, (town, situation) in enumerate(groups):
        x0 = left + i * slot + bar / 2
        for j, document in enumerate(DOCUMENTS):
            cell = report["times"][town][situation][document]
            x = x0 + 2 * j * bar
            out.append(_bar(x, base - cell["seed"] * scale, bar, cell["seed"] * scale, "#cbd5e0",
                            f"報告書 {TOWN_NAMES[town]} {SITUATION_LABELS[situation]} "
                            f"{DOCUMENT_LABELS[document]} {cell['seed']:.0f} 秒"))  # fmt: skip
            if cell["measured"] is not None:
                h = cell["measured"] * scale
                out.append(
                    _bar(
                        x + bar * 0.9,
                        base - h,
                        bar,
                        h,
                        colours[document],
                        f"計測 {DOCUMENT_LABELS[document]} {cell['measured']:.2f} 秒",
                    )
                )
        out.append(
            f"<text x='{x0 + slot / 2 - bar:.1f}' y='{base + 14}' font-size='10' "
            f"text-anchor='middle'>{html.escape(SITUATION_LABELS[situation][:4])}</text>"
        )
        if situation == SITUATIONS[0]:
            out.append(
                f"<text x='{x0:.1f}' y='{base + 30}' font-size='12'>"
                f"{html.escape(TOWN_NAMES[town])}</text>"
            )
    legend = [("#cbd5e0", "報告書")] + [(colours[d], DOCUMENT_LABELS[d]) for d in DOCUMENTS]
    for k, (colour, label) in enumerate(legend):
        out.append(
            f"<rect x='{left + k * 110}' y='{height - 16}' width='10' height='10' "
            f"fill='{colour}'/><text x='{left + k * 110 + 14}' y='{height - 7}' "
            f"font-size='11'>{html.escape(label)}（計測）</text>"
            if k
            else f"<rect x='{left}' y='{height - 16}' width='10' height='10' fill='{colour}'/>"
            f"<text x='{left + 14}' y='{height - 7}' font-size='11'>報告書の値</text>"
        )
    out.append("</svg>")
    return "".join(out)


def recovery_chart(report: dict[str, Any]) -> str:
    """Horizontal bars: recovery per town and case against the case's target (line)."""
    cases = report["cases"]
    width, row_h, left = 760, 22, 260
    height = row_h * max(1, len(cases)) + 30
    top = max([60.0] + [c["recovery_s"] or 0 for c in cases])
    scale = (width - left - 20) / top
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"role='img' aria-label='復旧時間'>"]  # fmt: skip
    for i, case in enumerate(cases):
        y = 10 + i * row_h
        label = f"{TOWN_NAMES[case['town']]} {SITUATION_LABELS[case['situation']]}"
        out.append(
            f"<text x='{left - 6}' y='{y + 14}' font-size='11' text-anchor='end'>"
            f"{html.escape(label)}</text>"
        )
        value = case["recovery_s"]
        if value is not None:
            colour = "#2f855a" if case["recovery_ok"] else "#c53030"
            out.append(_bar(left, y + 3, value * scale, row_h - 8, colour, f"{value:.2f} 秒"))
            out.append(
                f"<text x='{left + value * scale + 4:.1f}' y='{y + 14}' font-size='10'>"
                f"{value:.1f} 秒</text>"
            )
        target = left + case["recovery_target_s"] * scale
        out.append(
            f"<line x1='{target:.1f}' x2='{target:.1f}' y1='{y}' y2='{y + row_h}' "
            f"stroke='#333' stroke-dasharray='3,2'/>"
        )
    out.append(
        f"<text x='{left}' y='{height - 4}' font-size='10'>破線: 目標（ケース1 10秒、"
        f"ケース2・3 60秒）</text></svg>"
    )
    return "".join(out)
