"""A box's writers live in several processes; a save waits for another process's long
write transaction instead of failing with "database is locked"."""

import sqlite3
import subprocess
import sys
from pathlib import Path

from shared.storage import SqliteStorage

HOLD_S = 6.5  # longer than sqlite3's default busy timeout of 5 s

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT OR REPLACE INTO blobs (key, data) VALUES ('held', x'00')")
print("HOLDING", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def test_a_save_waits_out_another_process_holding_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "replica.db"
    storage = SqliteStorage(path)
    storage.save(("town", "before"), b"1")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(HOLD_S)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"HOLDING"
        storage.save(("town", "during"), b"2")  # blocks until the holder commits
        assert holder.wait(timeout=60) == 0
        assert storage.load(("town", "during")) == b"2"
        assert storage.load(("town", "before")) == b"1"
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
        storage.close()
