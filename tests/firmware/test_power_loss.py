"""Power loss and the box's SQLite settings (WAL, synchronous=FULL in shared/storage.py).
Two different things are simulated, and each test says which:

1. `test_power_cut_at_every_fsync_point` — a POWER-CUT MODEL. A writer process commits rows
   through `SqliteStorage` under strace, which records every pwrite64, ftruncate, fsync and
   fdatasync on the database files and every acknowledgement the writer prints after a
   commit returns. For each fsync point k the test rebuilds the files as a disk could hold
   them if the power failed just before fsync k: every write to a file since that file's
   last *completed* fsync is lost (the pessimistic case), or a random subset of those
   writes survives (write-back caches reorder). Each rebuilt database must pass
   `PRAGMA integrity_check` and hold every row acknowledged before the cut.
   Not simulated: torn sectors inside one write, a disk that acknowledges fsync and then
   loses the data (lying write cache: the appliance's disks must honour flushes), and
   directory entries (treated as durable at once, as ext4's journal makes them in practice).

2. `test_sigkill_at_random_points` — SIGKILL ONLY, which is NOT a power cut: the kernel's
   page cache survives a killed process. It shows that a crash of the box process at any
   moment (the watchdog's kill, OOM) loses no committed row and corrupts nothing.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = 40
PAYLOAD = 3000
SEP = "\x1f"  # SqliteStorage joins key parts with the unit separator

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from shared.storage import SqliteStorage

    storage = SqliteStorage(Path(sys.argv[1]) / "replica.db")
    # Checkpoints every few commits, so that the small run also crosses checkpoint fsyncs
    # (the box keeps SQLite's default of 1000 pages).
    storage._conn.execute("PRAGMA wal_autocheckpoint=8")
    if len(sys.argv) > 5:  # only to show that the model catches a weaker setting
        storage._conn.execute(f"PRAGMA synchronous={sys.argv[5]}")
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    for i in range(first, first + int(sys.argv[2])):
        storage.save(("row", f"{i:05d}"), bytes([i % 251]) * %(payload)d)
        sys.stdout.write(f"{i}\\n")
        sys.stdout.flush()
    storage.close()
    """
).replace("%(payload)d", str(PAYLOAD))


def check_database(db: Path, acknowledged: set[int]) -> None:
    """integrity_check ok; every acknowledged row present with its exact bytes; nothing
    that was never written."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        rows = dict(conn.execute("SELECT key, data FROM blobs")) if "blobs" in tables else {}
    finally:
        conn.close()
    present = set()
    for key, data in rows.items():
        i = int(key.rsplit(SEP, 1)[-1])
        assert bytes(data) == bytes([i % 251]) * PAYLOAD, f"row {i} has the wrong bytes"
        present.add(i)
    lost = acknowledged - present
    assert not lost, f"acknowledged rows lost: {sorted(lost)}"


# ---------------------------------------------------------------- the power-cut model

_CALL = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def _bytes(escaped: str) -> bytes:
    return bytes.fromhex(escaped.replace("\\x", ""))


@dataclass
class Op:
    kind: str  # create | write | truncate | sync | unlink | ack
    inode: int = -1
    path: str = ""
    offset: int = 0
    data: bytes = b""
    size: int = 0
    acks: tuple[int, ...] = ()


@dataclass
class Trace:
    ops: list[Op] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, folder: str) -> Trace:
        trace, fds, inodes = cls(), {}, {}
        next_inode = 0
        for line in text.splitlines():
            match = _CALL.match(line)
            if not match:
                assert "<unfinished" not in line and "resumed>" not in line, line
                continue
            call, args, result = match.group(1), match.group(2), int(match.group(3))
            if result < 0:
                continue
            strings = [_bytes(s) for s in _STRING.findall(args)]
            assert '"...' not in args, "strace truncated a string: raise -s"
            first = args.split(",")[0].strip()
            if call == "openat":
                path = strings[0].decode()
                if not path.startswith(folder) or path.endswith("-shm"):
                    continue
                if path not in inodes:
                    inodes[path] = next_inode
                    trace.ops.append(Op("create", next_inode, path))
                    next_inode += 1
                fds[result] = inodes[path]
            elif call == "close":
                fds.pop(int(first), None)
            elif call == "unlink":
                path = strings[0].decode()
                if path in inodes:
                    trace.ops.append(Op("unlink", inodes.pop(path), path))
            elif call == "write" and first == "1":
                acks = tuple(int(n) for n in strings[0].decode().split())
                trace.ops.append(Op("ack", acks=acks))
            elif call == "write" and int(first) in fds:
                raise AssertionError("write() on a database file: the model needs pwrite64")
            elif call == "pwrite64" and int(first) in fds:
                offset = int(args.rsplit(",", 1)[1])
                trace.ops.append(Op("write", fds[int(first)], offset=offset, data=strings[0]))
            elif call == "ftruncate" and int(first) in fds:
                size = int(args.rsplit(",", 1)[1])
                trace.ops.append(Op("truncate", fds[int(first)], size=size))
            elif call in ("fsync", "fdatasync") and int(first) in fds:
                trace.ops.append(Op("sync", fds[int(first)]))
        return trace

    def sync_points(self) -> list[int]:
        return [i for i, op in enumerate(self.ops) if op.kind == "sync"]

    def disk_after_cut(
        self, cut: int, keep: random.Random | None
    ) -> tuple[dict[str, bytes], set[int]]:
        """Files as they may be on disk if the power failed just before op `cut`, and the
        rows acknowledged by then. keep=None: every unsynced write is lost; otherwise each
        unsynced write survives with probability 1/2."""
        last_sync: dict[int, int] = {}
        for i, op in enumerate(self.ops[:cut]):
            if op.kind == "sync":
                last_sync[op.inode] = i
        files: dict[int, bytearray] = {}
        names: dict[int, str] = {}
        acknowledged: set[int] = set()
        for i, op in enumerate(self.ops[:cut]):
            if op.kind == "create":
                files[op.inode], names[op.inode] = bytearray(), op.path
            elif op.kind == "unlink":
                files.pop(op.inode, None)
            elif op.kind == "ack":
                acknowledged.update(op.acks)
            elif op.kind in ("write", "truncate") and op.inode in files:
                durable = i < last_sync.get(op.inode, -1)
                if not durable and (keep is None or keep.random() < 0.5):
                    continue
                content = files[op.inode]
                if op.kind == "write":
                    end = op.offset + len(op.data)
                    if len(content) < end:
                        content.extend(b"\0" * (end - len(content)))
                    content[op.offset : end] = op.data
                else:
                    del content[op.size :]
                    content.extend(b"\0" * (op.size - len(content)))
        return {names[i]: bytes(c) for i, c in files.items()}, acknowledged


def trace_writer(folder: Path, synchronous: str | None = None) -> tuple[Trace, str]:
    strace = shutil.which("strace")
    assert strace, "apt-get install strace (scripts/setup.sh installs it)"
    data, log = folder / "data", folder / "trace.txt"
    data.mkdir()
    calls = "openat,close,unlink,write,pwrite64,ftruncate,fsync,fdatasync"
    extra = ["0", synchronous] if synchronous else []
    result = subprocess.run(
        [strace, "-f", "-qq", "-xx", "-s", "1000000", "-e", f"trace={calls}", "-o", str(log),
         sys.executable, "-c", WRITER, str(data), str(ROWS), str(REPO), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(i) for i in range(ROWS)]
    return Trace.parse(log.read_text(), str(data)), str(data / "replica.db")


def cut_everywhere(trace: Trace, db_path: str, tmp_path: Path) -> int:
    """Check the database after a cut before every fsync (and at the end), losing all or
    a random half of the unsynced writes. Returns how many disk states were checked."""
    rng = random.Random(1234)
    checked = 0
    for cut in [*trace.sync_points(), len(trace.ops)]:
        for keep in (None, rng, rng):
            files, acknowledged = trace.disk_after_cut(cut, keep)
            folder = tmp_path / f"cut-{checked}"
            folder.mkdir(parents=True)
            for path, content in files.items():
                (folder / Path(path).name).write_bytes(content)
            if (folder / Path(db_path).name).exists():
                check_database(folder / Path(db_path).name, acknowledged)
            else:
                assert not acknowledged
            checked += 1
    return checked


def test_power_cut_at_every_fsync_point(tmp_path: Path) -> None:
    trace, db_path = trace_writer(tmp_path)
    points = trace.sync_points()
    # every commit syncs the WAL; checkpoints sync the database file as well
    assert len(points) >= ROWS
    assert len({trace.ops[p].inode for p in points}) >= 2, "no checkpoint was crossed"
    assert cut_everywhere(trace, db_path, tmp_path / "cuts") >= 3 * ROWS


def test_the_model_catches_synchronous_normal(tmp_path: Path) -> None:
    """The check above can fail: with synchronous=NORMAL (WAL) a commit returns before its
    frames are synced, and a power cut loses rows the clerk was told were saved."""
    trace, db_path = trace_writer(tmp_path, synchronous="NORMAL")
    with pytest.raises(AssertionError, match="acknowledged rows lost"):
        cut_everywhere(trace, db_path, tmp_path / "cuts")


# ---------------------------------------------------------------- SIGKILL only


ZYGOTE = textwrap.dedent(
    """
    # Imports once, then forks one writer per line on stdin ("FIRST ACKFILE"), prints the
    # child's pid, waits for it and prints "done": 20 kills cost 20 forks, not 20 starts.
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from shared.storage import SqliteStorage

    for line in sys.stdin:
        first, acks = line.split()
        pid = os.fork()
        if pid == 0:
            fd = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            storage = SqliteStorage(Path(sys.argv[1]) / "replica.db")
            i = int(first)
            while True:
                storage.save(("row", f"{i:05d}"), bytes([i % 251]) * %(payload)d)
                os.write(fd, f"{i}\\n".encode())  # after save() returned: acknowledged
                i += 1
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("done", flush=True)
    """
).replace("%(payload)d", str(PAYLOAD))


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    """SIGKILL only — not a power cut (the page cache survives). 20 writers, each killed
    at a random moment; after each, integrity_check is ok and every row the writer had
    acknowledged (recorded after save() returned) is there."""
    rng = random.Random(20)
    data = tmp_path / "data"
    data.mkdir()
    db = data / "replica.db"
    acknowledged: set[int] = set()
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, str(data), str(REPO)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert zygote.stdin is not None and zygote.stdout is not None
    try:
        for run in range(20):
            acks = tmp_path / f"acks-{run}.txt"
            zygote.stdin.write(f"{run * 10_000} {acks}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            deadline = time.monotonic() + 30
            while not acks.exists() or not acks.read_text():  # at least one commit
                assert time.monotonic() < deadline, "the writer never committed"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.15))
            os.kill(pid, signal.SIGKILL)
            assert zygote.stdout.readline().strip() == "done"
            acknowledged.update(int(n) for n in acks.read_text().split())
            check_database(db, acknowledged)
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
        zygote.stdout.close()
    assert len(acknowledged) > 20
