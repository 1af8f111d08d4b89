"""The box's run mode, told to its town workers through the data folder.

`renkei box --drill` runs a training box (訓練モード): the counter judges with
`IssuanceContext.drill`, so every copy is a 見本 numbered in the D series, and the
box's towns are declared synthetic drill data. The web process writes the mode at
start-up (and clears it when started normally), so a worker never carries a stale
mode from an earlier run: workers are started by the web process, after this write.
"""

from __future__ import annotations

import json
from pathlib import Path

FILE = "box-mode.json"


def write(data_dir: Path, *, drill: bool) -> None:
    path = data_dir / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"mode": "drill" if drill else "normal"}), "utf-8")
    tmp.replace(path)


def is_drill(data_dir: Path | None) -> bool:
    """True only when the web process said so; a missing or unreadable file is normal
    mode (a live box never turns into a drill box by accident)."""
    if data_dir is None:
        return False
    try:
        return bool(json.loads((data_dir / FILE).read_text("utf-8")).get("mode") == "drill")
    except (OSError, ValueError, AttributeError):
        return False
