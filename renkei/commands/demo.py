"""`renkei demo`: a whole local federation on 127.0.0.1 — generate, import, hub, boxes.

Runs the hub and one box per town as separate processes (the same commands an
installation runs), prints their URLs, and waits for Ctrl-C. `--exit-when-ready` stops
once every process answers; `--smoke-test` also runs a real search over HTTP on every
box for a resident of its town and fails loudly if the resident is not found.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TOWN_CODES = ("15307", "15405", "15581")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate, import and run a local federation (hub + one box per town)"
    )
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="working folder")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic towns")
    parser.add_argument("--port", type=int, default=8700, help="hub port; boxes use the next")
    parser.add_argument(
        "--exit-when-ready", action="store_true", help="stop once every process answers"
    )
    parser.add_argument(
        "--smoke-test", action="store_true", help="also search every box over HTTP, then stop"
    )
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, flush=True)


def _prepare(workdir: Path, seed: int) -> Path:
    from cloud.app import hub_db_path
    from cloud.importer import import_export
    from cloud.synthetic import generate
    from shared.export_csv import write_export
    from shared.storage import SqliteStorage

    export_dir = workdir / "export"
    data_dir = workdir / "hub"
    if not (export_dir / TOWN_CODES[0]).exists():
        _say(f"合成データを生成しています（seed={seed}）: {export_dir}")
        write_export(generate(seed), export_dir)
    _say(f"基幹系データを取り込んでいます: {data_dir}")
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = SqliteStorage(hub_db_path(data_dir))
    try:
        report = import_export(export_dir, storage)
    finally:
        storage.close()
    _say(report.summary())
    if not report.ok:
        raise SystemExit(1)
    return data_dir


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _smoke_test(workdir: Path, box_urls: dict[str, str]) -> bool:
    from shared.export_csv import read_town

    ok = True
    for code, url in box_urls.items():
        export = read_town(workdir / "export" / code)
        person = next(r for r in export.residents if r.removal is None)
        response = httpx.get(f"{url}/api/search", params={"q": person.kana}, timeout=10)
        found = [row["resident_id"] for row in response.json().get("results", [])]
        passed = response.status_code == 200 and person.id in found
        ok &= passed
        mark = "OK" if passed else "NG"
        _say(f"[{mark}] {code} 検索「{person.kana}」→ {len(found)}件 ({url})")
    return ok


def run(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    data_dir = _prepare(workdir, args.seed)
    hub_url = f"http://127.0.0.1:{args.port}"
    box_urls = {code: f"http://127.0.0.1:{args.port + 1 + i}" for i, code in enumerate(TOWN_CODES)}
    renkei = [sys.executable, "-m", "renkei"]
    with _processes() as started:
        hub_cmd = [*renkei, "hub", "--data", str(data_dir), "--port", str(args.port)]
        started.append(subprocess.Popen(hub_cmd))
        _wait_ready(hub_url, started[-1])
        for code, url in box_urls.items():
            port = url.rsplit(":", 1)[1]
            box_cmd = [*renkei, "box", "--hub", hub_url, "--town", code, "--port", port]
            started.append(subprocess.Popen(box_cmd))
        for process, url in zip(started[1:], box_urls.values(), strict=True):
            _wait_ready(url, process)
        _say(f"ハブ: {hub_url}/")
        for code, url in box_urls.items():
            _say(f"連携ボックス {code}: {url}/")
        if args.smoke_test:
            return 0 if _smoke_test(workdir, box_urls) else 1
        if args.exit_when_ready:
            return 0
        _say("終了するには Ctrl-C を押してください。")
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in started):
                time.sleep(1)
    return 0
