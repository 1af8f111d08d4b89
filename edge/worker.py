"""One worker process per open town: the only place on a box where a town's keys and
decrypted records live (BRIEF §3 Isolation).

The web front never sees a key or a record beyond the rows of the page it renders. It
talks to a town's worker over a UNIX socket only that box's user can open, one JSON
object per line each way:

    {"op": "unlock", "login_id": ..., "password": ...}
        -> {"ok": true, "capability": C, "display_name": ..., "roles": [...],
            "issued_at": seconds}   or {"ok": false, "error": message}
    {"op": "search", "capability": C, "query": ...}
        -> {"ok": true, "as_of": ..., "rows": [...]}   or {"ok": false, "error": ...}
    {"op": "info", "capability": C}   -> {"ok": true, "name", "as_of", "as_of_label"}
    {"op": "household", "capability": C, "resident_id": R} -> {"ok": true, "household": …}
    {"op": "issue", "capability": C, "form": {...}, "desk": {...}}
        -> {"ok": true, "issued": bool, "copies": [{"number", "pdf": hex, "job"}], "fee" …
            | "reason", "tell_applicant"}                       (edge.counter.Counter.issue)
    {"op": "list", "capability": C, "form": {...}, "desk": {...}}   a list copy, the same
    {"op": "districts", "capability": C}  -> {"ok": true, "districts": [...], "roles"}
    {"op": "printed", "capability": C, "number": N} -> {"ok": true, "pdf": hex}
    {"op": "intake", "capability": C, "form": {...}, "desk": {...}}
        -> {"ok": true, "number": 受付番号, "pdf": hex receipt}       (edge.intake)
    {"op": "spoil", "capability": C, "form": {"number", "reason", "sheets", "output"}, …}
        -> as "issue": the voided copy reprinted under a new number (or the refusal)
    {"op": "intake_list", "capability": C} -> {"ok": true, "applications": [...]}
    {"op": "intake_receipt", "capability": C, "number": N} -> {"ok": true, "pdf": hex}
    {"op": "export", "capability": C, "form": {"what": "intake"|"list", …}, "desk": {…}}
        -> {"ok": true, "name", "file": hex sealed to the town}      (edge.exports)
    {"op": "webfont", "capability": C, "face": "mj"|"town"|"gyosei"} -> {"ok", "font": hex}
    {"op": "close", "capability": C}  -> {"ok": true}     (the session ended)
    {"op": "ping"}                    -> {"ok": true, "town": code, "open": bool}
    {"op": "glass_sign", "record": {...}, "capability": C}            (host supervisor)
    {"op": "glass_sign", "record": {...}, "login_id": ..., "password": ...} (roster clerk)
        -> {"ok": true, "signature": {...}} — a break-glass signature, see `edge.glass`
    the supervisor's operations (clerks, 職務代理, audit, registers, export): see
    edge/worker_admin.py

A capability is a random token the worker issues at a successful unlock and checks on
every later request: a bug in the front's session handling can at worst replay a
capability of the same town, never reach another town's worker, which holds neither
that town's keys nor its capabilities. Killing a worker seals its town; the other towns'
workers are untouched.

The worker opens its town from the box's sync log (`edge.replica.TownReader`) and
follows it: before each request it applies the blobs the box's sync agent stored since
(another process, the same store), so a clerk sees an edit made on another box as soon
as it has arrived here; the search index and the counter's data are rebuilt when the
documents changed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import secrets
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge import worker_admin
from edge.boxkey import box_code, box_signing_key
from edge.counter import ClerkSession, Counter, CounterError, DeskInfo, warm_up
from edge.glass import sign_as_roster_clerk, sign_as_supervisor
from edge.replica import BoxReplica, TownReader, Unlocked, UnlockError
from edge.town import OpenTown
from edge.webfont import build_faces, gaiji_table
from shared.crypto import KeyRing
from shared.issuance import JST, IssuanceError
from shared.search import QueryError
from shared.storage import SqliteStorage

log = logging.getLogger("renkei.worker")

MAX_LINE = 64 * 1024


class TownWorker:
    def __init__(self, data_dir: Path, town: str, shards: int, box_id: str = "") -> None:
        self.town = town
        self.data_dir = data_dir
        self.box_id = box_id or box_code(data_dir)
        self.shards = shards
        self.storage = SqliteStorage(data_dir / "replica.db")
        self.replica = BoxReplica(self.storage)
        self.open: OpenTown | None = None
        self.capabilities: dict[str, ClerkSession] = {}
        self.counter: Counter | None = None
        self.webfonts: dict[str, bytes] | None = None
        self._gaiji: dict[int, str] | None = None
        self.keyring: KeyRing | None = None
        self.reader: TownReader | None = None
        # Requests run in threads (`_serve_connection`): two clerks logging in to a
        # sealed town at once must open it once, not replay its log twice.
        self._opening = threading.Lock()

    def follow(self) -> None:
        """Take in what the box's agent stored since the last request."""
        if self.open is None or self.reader is None:
            return
        if self.reader.follow():
            # Same documents, new contents: a fresh index, and the counter's data rebuilt
            # at its next use (a new 支援措置 block must count at once).
            self.open = OpenTown(self.town, self.open.name, self.open.as_of, self.open.registry)
            self.counter = None
        as_of = self.replica.as_of(self.town)
        if as_of != self.open.as_of:
            self.open.as_of = as_of
            self.counter = None

    def unlock(self, login_id: str, password: str) -> dict[str, Any]:
        try:
            unlocked = self.replica.unlock(self.town, login_id, password)
        except UnlockError as exc:
            return {"ok": False, "error": str(exc)}
        with self._opening:
            if self.open is None:
                self._open_town(unlocked, login_id)
        capability = secrets.token_urlsafe(32)
        self.capabilities[capability] = ClerkSession(
            login_id, unlocked.clerk_keys, unlocked.certificate
        )
        return {
            "ok": True,
            "capability": capability,
            "display_name": unlocked.display_name,
            "roles": sorted(unlocked.certificate.roles),
            "issued_at": unlocked.certificate.issued_at.timestamp(),
        }

    def _open_town(self, unlocked: Unlocked, login_id: str) -> None:
        reader = TownReader(self.storage, self.town, self.shards)
        registry = reader.open(unlocked.keyring)
        name, as_of = self.replica.town_name(self.town), self.replica.as_of(self.town)
        opened = OpenTown(self.town, name, as_of, registry)
        self.reader, self.keyring = reader, unlocked.keyring
        self.open = opened  # last: other requests take a set `open` as the town ready
        log.info("town %s opened by login %r", self.town, login_id)
        if reader.checkpoint_due():
            reader.save_checkpoint()  # the next opening starts from here

    def search(self, capability: str, query: str | None) -> dict[str, Any]:
        """Rows for `query`; with no query, only the town's name and as-of time."""
        if capability not in self.capabilities or self.open is None:
            return {"ok": False, "error": "denied"}
        _, warning = self.replica.as_of_line(self.town)
        info = {
            "town": self.town,
            "name": self.open.name,
            "as_of": self.open.as_of,
            "as_of_label": self.open.as_of_label,
            "as_of_warning": warning,
        }
        if query is None:
            return {"ok": True, **info, "rows": []}
        try:
            rows = [dataclasses.asdict(r) for r in self.open.search(query)]
        except QueryError as exc:
            return {"ok": False, **info, "error": str(exc), "query_error": True}
        for row in rows:  # names as printed: legacy 外字 through the town's table
            row["name"] = row["name"].translate(self.gaiji())
        return {"ok": True, **info, "rows": rows}

    def gaiji(self) -> dict[int, str]:
        if self._gaiji is None:
            assert self.open is not None
            self._gaiji = gaiji_table(self.open.registry.objects("gaiji"))
        return self._gaiji

    def webfont(self, capability: str, face: str) -> dict[str, Any]:
        """The town's name fonts (edge.webfont), built once per worker; for its clerks."""
        if capability not in self.capabilities or self.open is None:
            return {"ok": False, "error": "denied"}
        if self.webfonts is None:
            from printing.fonts import default_registry

            table = self.gaiji()
            names = [r.name.translate(table) for r in self.open.registry.objects("residents")]
            self.webfonts = build_faces(default_registry(), self.town, names)
        font = self.webfonts.get(face)
        if font is None:
            return {"ok": False, "error": "no such font"}
        return {"ok": True, "font": font.hex()}

    def _counter(self) -> Counter:
        """Built at the first counter request, not at login: it reads every resident and
        household (a person's tax, insurance and vehicles later, with that person's shard:
        `edge.counter.town_data`), which a clerk who only searches never needs."""
        if self.counter is None:
            assert self.open is not None and self.keyring is not None
            self.counter = Counter(
                self.open.registry,
                self.keyring,
                self.storage,
                self.box_id,
                self.open.as_of,
                box_signing_key(self.data_dir),
                self.data_dir,
            )
        return self.counter

    def household(self, capability: str, resident_id: str) -> dict[str, Any]:
        if capability not in self.capabilities or self.open is None:
            return {"ok": False, "error": "denied"}
        try:
            found = self._counter().household(resident_id, datetime.now(JST).date())
        except CounterError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "household": found}

    def issue(self, capability: str, op: str, request: dict[str, Any]) -> dict[str, Any]:
        clerk = self.capabilities.get(capability)
        if clerk is None or self.open is None:
            return {"ok": False, "error": "denied"}
        form = request.get("form")
        form = form if isinstance(form, dict) else {}
        try:
            desk = DeskInfo.from_json(request.get("desk"))
            counter = self._counter()
            worker_admin.apply_appointments(self, counter)  # 職務代理 registered on the box
            if op == "list":
                return counter.list_copy(clerk, form, desk, datetime.now(UTC))
            if op == "intake":
                return counter.take_intake(clerk, form, desk, datetime.now(UTC))
            if op == "export":
                return counter.export(clerk, form, desk, datetime.now(UTC))
            if op == "spoil":
                number = str(form.get("number", ""))[:64]
                return counter.spoil_and_reprint(clerk, number, form, desk, datetime.now(UTC))
            return counter.issue(clerk, form, desk, datetime.now(UTC))
        except (CounterError, IssuanceError, ValueError) as exc:
            return {"ok": False, "error": str(exc), "query_error": True}

    def counter_view(self, capability: str, op: str, request: dict[str, Any]) -> dict[str, Any]:
        clerk = self.capabilities.get(capability)
        if clerk is None or self.open is None:
            return {"ok": False, "error": "denied"}
        try:
            counter = self._counter()
        except CounterError as exc:
            return {"ok": False, "error": str(exc)}
        if op == "districts":
            return {"ok": True, "districts": counter.districts(),
                    "roles": sorted(r.value for r in clerk.roles)}  # fmt: skip
        if op == "intake_list":
            return {"ok": True, "applications": counter.intake_list()}
        number = str(request.get("number", ""))[:64]
        pdf = counter.intake.receipt(number) if op == "intake_receipt" else counter.printed(number)
        if pdf is None:
            return {"ok": False, "error": "発行番号の控えがこの機器にありません。"}
        return {"ok": True, "pdf": pdf.hex()}

    def glass_sign(self, request: dict[str, Any]) -> dict[str, Any]:
        """A break-glass signature: by the session's clerk (the host supervisor) when a
        capability is given, else by a roster clerk's password; the town stays sealed."""
        record = request.get("record")
        session = self.capabilities.get(str(request.get("capability", "")))
        if "capability" in request:
            if session is None:
                return {"ok": False, "error": "denied"}
            return sign_as_supervisor(self.town, record, session.keys, session.certificate)
        return sign_as_roster_clerk(
            self.replica, self.town, record,
            str(request.get("login_id", "")), str(request.get("password", "")),
        )  # fmt: skip

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op not in ("ping", "unlock", "close", "glass_sign"):
            self.follow()  # what a clerk sees is what the box's sync log holds now
        if op == "ping":
            return {"ok": True, "town": self.town, "open": self.open is not None}
        if op == "unlock":
            return self.unlock(str(request.get("login_id", "")), str(request.get("password", "")))
        if op == "search":
            return self.search(str(request.get("capability", "")), str(request.get("query", "")))
        if op == "info":
            return self.search(str(request.get("capability", "")), None)
        if op == "household":
            return self.household(
                str(request.get("capability", "")), str(request.get("resident_id", ""))
            )
        if op == "webfont":
            return self.webfont(str(request.get("capability", "")), str(request.get("face", "")))
        if op in ("issue", "list", "intake", "export", "spoil"):
            return self.issue(str(request.get("capability", "")), op, request)
        if op in ("districts", "printed", "intake_list", "intake_receipt"):
            return self.counter_view(str(request.get("capability", "")), op, request)
        if op in worker_admin.OPERATIONS:  # the supervisor's operations (edge/worker_admin.py)
            return worker_admin.handle(self, str(op), request)
        if op == "close":
            self.capabilities.pop(str(request.get("capability", "")), None)
            return {"ok": True}
        if op == "glass_sign":
            return self.glass_sign(request)
        return {"ok": False, "error": "unknown request"}


async def _serve_connection(
    worker: TownWorker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while line := await reader.readline():
            if len(line) > MAX_LINE:
                break
            try:
                request = json.loads(line)
            except ValueError:
                response: dict[str, Any] = {"ok": False, "error": "bad request"}
            else:
                # Argon2id, decryption and search are CPU work: keep the loop responsive.
                try:
                    response = await asyncio.to_thread(worker.handle, request)
                except Exception:  # a bug must not end the town's sessions
                    log.exception("request %r failed", request.get("op"))
                    response = {
                        "ok": False,
                        "error": "内部エラーが発生しました。管理者に連絡してください。",
                    }
            writer.write(json.dumps(response, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


async def serve(data_dir: Path, town: str, socket_path: Path, shards: int) -> None:
    worker = TownWorker(data_dir, town, shards)
    if socket_path.exists():
        socket_path.unlink()
    old_umask = os.umask(0o077)  # the socket: the box's own user only
    try:
        server = await asyncio.start_unix_server(
            lambda r, w: _serve_connection(worker, r, w), path=str(socket_path), limit=MAX_LINE
        )
    finally:
        os.umask(old_umask)
    print("READY", flush=True)
    # the first document at the counter must not wait seconds for the printing imports
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a town's worker process on a box")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--town", required=True)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--shards", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(serve(args.data, args.town, args.socket, args.shards))


if __name__ == "__main__":
    main()
