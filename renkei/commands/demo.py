"""`renkei demo`: a whole local federation on 127.0.0.1 — generate, import, hub, boxes.

Runs the hub and one box per town as separate processes (the same commands an
installation runs), each box enrolled with a one-time token as IT staff enrol one
(renkei/demo_enrolment.py), prints their URLs, and waits for Ctrl-C. Each process logs
to DIR/logs/. `--exit-when-ready` stops once every process answers; `--smoke-test` also
runs a real search over HTTP on every box for a resident of its town, then waits for the
hub to hold each box's newest audit chain head and reads the logs for refused anchors,
and fails loudly if any of that does not hold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from nacl.signing import VerifyKey

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


def _demo_secret(path: Path) -> str:
    """A random secret kept in the demo's folder (a demo convenience: a real hub's
    operator types the passphrase; real clerks choose their passwords)."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _demo_password(rng: secrets.SystemRandom) -> str:
    words = ["sakura", "yukiguni", "kawa", "umi", "yama", "inaho", "koshi", "shinano"]
    return "-".join(rng.sample(words, 3)) + f"-{rng.randrange(1000, 9999)}"


def _prepare(
    workdir: Path, seed: int
) -> tuple[Path, str, list[tuple[str, str, str, str]], VerifyKey]:
    """The towns generated and imported at the hub, demo clerks' passwords, and the key
    ceremony for box enrolment (the boxes themselves enrol once the hub answers)."""
    from cloud.app import hub_db_path
    from cloud.custody import Custody
    from cloud.importer import import_export
    from cloud.synthetic import generate
    from renkei.demo_enrolment import hold_ceremony
    from shared.export_csv import write_export
    from shared.storage import SqliteStorage

    export_dir = workdir / "export"
    data_dir = workdir / "hub"
    if not (export_dir / TOWN_CODES[0]).exists():
        _say(f"合成データを生成しています（seed={seed}）: {export_dir}")
        write_export(generate(seed), export_dir)
    _say(f"基幹系データを取り込んでいます: {data_dir}")
    data_dir.mkdir(parents=True, exist_ok=True)
    passphrase = _demo_secret(workdir / "demo-hub-passphrase")
    custody = Custody.open_or_create(data_dir, passphrase)
    storage = SqliteStorage(hub_db_path(data_dir))
    credentials_file = workdir / "demo-credentials.json"
    try:
        report = import_export(export_dir, storage, custody=custody)
        if credentials_file.exists():
            credentials = [tuple(c) for c in json.loads(credentials_file.read_text())]
        else:
            credentials = _provision_demo_clerks(export_dir, storage, custody)
            credentials_file.write_text(json.dumps(credentials, ensure_ascii=False))
            credentials_file.chmod(0o600)
        custody.save(data_dir, passphrase)
    finally:
        storage.close()
    _say(report.summary())
    if not report.ok:
        raise SystemExit(1)
    ceremony_passphrase = _demo_secret(workdir / "demo-ceremony-passphrase")
    root = hold_ceremony(workdir, data_dir, passphrase, ceremony_passphrase)
    return data_dir, passphrase, credentials, root


def _provision_demo_clerks(
    export_dir: Path, storage: Any, custody: Any
) -> list[tuple[str, str, str, str]]:
    """One clerk on the emergency roster and one supervisor per town get passwords."""
    from shared.export_csv import read_town
    from shared.model import Role

    rng = secrets.SystemRandom()
    chosen = []
    for code in TOWN_CODES:
        clerks = read_town(export_dir / code).clerks
        roster = next(c for c in clerks if c.on_roster)
        supervisor = next(
            c for c in clerks if Role.SUPERVISOR in c.roles and c.login_id != roster.login_id
        )
        for clerk in (roster, supervisor):
            password = _demo_password(rng)
            custody.provision_clerk(storage, clerk, password)
            chosen.append((code, clerk.login_id, password, clerk.name))
    return chosen


def _issue_tls(
    workdir: Path, box_urls: dict[str, str], *, into: Path | None = None
) -> tuple[Path, dict[str, Path]]:
    """The federation CA (made once) and a server certificate for each box, written to
    `into`/TOWN (the demo's ceremony folder) or else to the box's own TLS folder."""
    from edge.tls import create_ca, issue_server_cert, write_server_files

    ca_file = workdir / "ca" / "renkei-ca.crt"
    ca_key = workdir / "ca" / "renkei-ca.key"
    if not ca_file.exists():
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        cert, key = create_ca()
        ca_key.write_bytes(key)
        ca_key.chmod(0o600)
        ca_file.write_bytes(cert)
    folders = {}
    for code, url in box_urls.items():
        # the certificate names the address the box is reached at (the drill's boxes sit
        # in network namespaces at private addresses, the demo's on 127.0.0.1)
        address = urlsplit(url).hostname or "127.0.0.1"
        cert, key = issue_server_cert(
            ca_file.read_bytes(), ca_key.read_bytes(), [f"box-{code}.renkei.lan"], [address]
        )
        folders[code] = into / code if into else workdir / "boxes" / code / "tls"
        write_server_files(folders[code], cert, key)
    return ca_file, folders


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], ca_file: Path, timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            context = ssl.create_default_context(cafile=ca_file)
            response = httpx.get(f"{url}/api/health", timeout=2, verify=context)
            if response.status_code == 200:
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


def _log_in(client: httpx.Client, town: str, login_id: str, password: str) -> bool:
    client.get("/login").raise_for_status()
    token = client.cookies.get("renkei_login_csrf")
    form = {"csrf_token": token, "town": town, "login_id": login_id, "password": password}
    response = client.post("/login", data=form)
    return response.status_code == 303


def _smoke_test(
    workdir: Path,
    box_urls: dict[str, str],
    ca_file: Path,
    credentials: list[tuple[str, str, str, str]],
) -> bool:
    from shared.export_csv import read_town

    ok = True
    for code, url in box_urls.items():
        export = read_town(workdir / "export" / code)
        person = next(r for r in export.residents if r.removal is None)
        _, login_id, password, _ = next(c for c in credentials if c[0] == code)
        context = ssl.create_default_context(cafile=ca_file)
        with httpx.Client(base_url=url, verify=context, timeout=60) as client:
            logged_in = _log_in(client, code, login_id, password)
            response = client.get("/api/search", params={"q": person.kana})
            found = [row["resident_id"] for row in response.json().get("results", [])]
        passed = logged_in and response.status_code == 200 and person.id in found
        ok &= passed
        mark = "OK" if passed else "NG"
        _say(f"[{mark}] {code} ログイン {login_id} → 検索「{person.kana}」→ {len(found)}件 ({url})")
    return ok


def _demo_font_env(workdir: Path) -> dict[str, str]:
    """The towns' 外字 fonts for the demo boxes. A real town installs its own font files
    in $RENKEI_FONT_DIR; the demo has none, so without these every synthetic resident
    whose name uses a town 外字 would get the missing-glyph alert instead of a
    certificate. They are stand-ins built from IPAmj glyphs (printing.standin_fonts),
    and the demo says so; an operator's own $RENKEI_FONT_DIR wins."""
    from printing.fonts import FONT_DIR_ENV
    from printing.standin_fonts import build_standin_fonts

    if os.environ.get(FONT_DIR_ENV):
        return dict(os.environ)
    font_dir = workdir / "fonts"
    if not (font_dir / "gyosei.ttf").exists():
        font_dir.mkdir(parents=True, exist_ok=True)
        build_standin_fonts(font_dir)
    _say(f"外字フォント: デモ用の代替フォント（実際の町の外字フォントではありません）: {font_dir}")
    return {**os.environ, FONT_DIR_ENV: str(font_dir)}


REFUSED_ANCHORS = ("anchors refused", "refused the audit anchors")  # hub's and box's words


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process logging to `log` (fresh each run, so the smoke test reads this run's)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _check_anchoring(
    data_dir: Path, boxes: list[Any], logs: list[Path], timeout_s: float = 90.0
) -> bool:
    """The hub holds each box's newest audit chain head (it takes heads only from an
    enrolled box), and no log says anchors were refused."""
    from renkei.demo_enrolment import wait_anchored

    behind = wait_anchored(data_dir, boxes, timeout_s)
    for box in boxes:
        mark = "NG" if box.name in behind else "OK"
        _say(f"[{mark}] {box.name} 監査ログの先頭をハブが保管（登録済みのボックスとして）")
    refusals = [
        f"{log.name}: {line.strip()}"
        for log in logs
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if any(marker in line for marker in REFUSED_ANCHORS)
    ]
    _say(f"[{'NG' if refusals else 'OK'}] 監査ログの先頭の拒否: {len(refusals)}件")
    for line in refusals[:10]:
        _say(f"    {line}")
    return not behind and not refusals


def run(args: argparse.Namespace) -> int:
    from renkei.demo_enrolment import DemoBox, DemoEnrolmentError, enrol_boxes

    workdir: Path = args.dir
    data_dir, passphrase, credentials, root = _prepare(workdir, args.seed)
    hub_url = f"http://127.0.0.1:{args.port}"
    box_urls = {
        code: f"https://127.0.0.1:{args.port + 1 + i}" for i, code in enumerate(TOWN_CODES)
    }
    # The ceremony's TLS material (the USB stick), handed to each box at enrolment.
    ca_file, staged = _issue_tls(workdir, box_urls, into=workdir / "ceremony")
    boxes = [
        DemoBox(code, workdir / "boxes" / code / "data", workdir / "boxes" / code / "tls",
                staged[code])
        for code in TOWN_CODES
    ]  # fmt: skip
    box_env = _demo_font_env(workdir)
    renkei = [sys.executable, "-m", "renkei"]
    logs = [workdir / "logs" / "hub.log", *(workdir / "logs" / f"{b.name}.log" for b in boxes)]
    with _processes() as started:
        hub_cmd = [*renkei, "hub", "--data", str(data_dir), "--port", str(args.port)]
        hub_env = {**os.environ, "RENKEI_HUB_PASSPHRASE": passphrase}  # the operator's part
        started.append(_spawn(hub_cmd, hub_env, logs[0]))
        _wait_ready(hub_url, started[-1], ca_file)
        try:
            enrolled = enrol_boxes(hub_url, data_dir, passphrase, root, ca_file, boxes)
        except DemoEnrolmentError as exc:
            _say(f"連携ボックスを登録できませんでした: {exc}")
            return 1
        for name in enrolled:
            _say(f"{name} を登録しました（ワンタイムトークン → renkei enroll）")
        for box, url, log in zip(boxes, box_urls.values(), logs[1:], strict=True):
            box_cmd = [
                *renkei, "box", "--hub", hub_url, "--town", box.town,
                "--port", url.rsplit(":", 1)[1], "--data", str(box.data), "--tls", str(box.tls),
            ]  # fmt: skip
            started.append(_spawn(box_cmd, box_env, log))
        for process, url in zip(started[1:], box_urls.values(), strict=True):
            _wait_ready(url, process, ca_file)
        _say(f"ハブ: {hub_url}/")
        for code, url in box_urls.items():
            _say(f"連携ボックス {code}: {url}/   （box-{code}.renkei.lan）")
        _say(f"連携CAのルート証明書（端末に登録してください）: {ca_file}")
        _say(f"ログ: {workdir / 'logs'}")
        _say("デモ用の職員ID・パスワード:")
        for code, login_id, password, name in credentials:
            _say(f"  {code}  {login_id:24} {password:32} {name}")
        if args.smoke_test:
            searched = _smoke_test(workdir, box_urls, ca_file, credentials)
            anchored = _check_anchoring(data_dir, boxes, logs)
            return 0 if searched and anchored else 1
        if args.exit_when_ready:
            return 0
        _say("終了するには Ctrl-C を押してください。")
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in started):
                time.sleep(1)
    return 0
