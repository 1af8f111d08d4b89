"""The data side of `renkei update rollback`: before `current` is switched back to the
previous version, the box's and hub's stores are returned to the schema that version
knows (shared/migrations.py), with the down steps recorded in the stores themselves.

What the previous version knows is asked of it: `<version>/bin/python -m
shared.migrations latest`, run from its own directory (so the running version's code
is not picked up). A version from before migrations has no such module: it knows the
baseline only, and every later migration is undone.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from shared import migrations

log = logging.getLogger(__name__)

DEFAULT_DATA = (Path("/var/lib/renkei/box"), Path("/var/lib/renkei/hub"))


def known_schema(version_dir: Path) -> dict[str, int]:
    """The newest schema per store kind that the code in `version_dir` knows."""
    python = version_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        result = subprocess.run(
            [str(python), "-I", "-m", "shared.migrations", "latest"],
            cwd=version_dir,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        if result.returncode == 0:
            known = json.loads(result.stdout)
            return {str(k): int(v) for k, v in known.items()}
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
        log.warning("could not ask %s which schema it knows: %s", version_dir, exc)
    return dict.fromkeys(migrations.MIGRATIONS, migrations.BASELINE)


def downgrade(data_dirs: Sequence[Path], version_dir: Path) -> dict[str, list[int]]:
    """Undo, in every store under `data_dirs`, the migrations the code in `version_dir`
    does not know. Returns {store path: versions undone}."""
    known = known_schema(version_dir)
    undone = {}
    for store in migrations.stores_in(data_dirs):
        kind = migrations.store_kind(store)
        target = known.get(kind, migrations.BASELINE)
        done = migrations.rollback(store, max(target, migrations.BASELINE), kind)
        if done:
            log.info("%s: schema migrations %s undone for %s", store, done, version_dir.name)
        undone[str(store)] = done
    return undone
