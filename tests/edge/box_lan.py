"""Boxes of 聖籠町 on one loopback "LAN", as real processes: a hub with box enrolment
configured (test_box_anchoring.prepare_hub), each box enrolled there with `renkei
enrolment token` and `renkei enroll` (the boxes at once, as an IT team enrolling several
does), then started with discovery on 127.0.0.1 (`renkei box --discover`) and fast
liveness settings. What the peer-anchor and revocation tests start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import free_port
from test_box_anchoring import HUB_PASSPHRASE, enrol_box, prepare_hub
from test_box_processes import _wait

from edge.tls import create_ca, issue_server_cert, write_server_files

TOWN = "15307"
# A peer is checked every second and an unknown one asked again every 2 s.
FAST = {"liveness_interval_s": 1.0, "liveness_timeout_s": 2.0, "recheck_s": 2.0}


@dataclass
class Lan:
    root: Path  # hub/ and, per box, <name>/data and <name>/tls
    env: dict[str, str]  # RENKEI_HUB_PASSPHRASE set: the hub's CLI commands need it
    hub: subprocess.Popen[bytes]
    hub_url: str
    supervisor: str  # a 聖籠町 supervisor who can log in on every box
    ports: dict[str, int]  # name → HTTPS port
    data: dict[str, Path]  # name → data folder
    processes: list[subprocess.Popen[bytes]]  # hub first, then the boxes

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.ports[name]}"

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"


@contextmanager
def lan_boxes(
    root: Path,
    export_dir: Path,
    boxes: Mapping[str, str],
    *,
    settings: Mapping[str, Any] = FAST,
    sync_ports: bool = False,
    hub_unreachable: frozenset[str] = frozenset(),
) -> Iterator[Lan]:
    """`boxes` maps a short name to the box id it is enrolled as. `settings` go into each
    box's discovery.json; `sync_ports` offers each a box↔box sync port (sync.json); the
    boxes named in `hub_unreachable` are pointed at a port where nothing listens. Every
    process still running is stopped on the way out."""
    federation, supervisor = prepare_hub(root, export_dir)
    ca_cert, ca_key = create_ca()
    (root / "ca.crt").write_bytes(ca_cert)
    write_server_files(root / "tls", *issue_server_cert(ca_cert, ca_key, [], ["127.0.0.1"]))
    env = {**os.environ, "RENKEI_HUB_PASSPHRASE": HUB_PASSPHRASE}
    hub_port, dead_port = free_port(), free_port()
    ports = {name: free_port() for name in boxes}
    data = {name: root / name / "data" for name in boxes}
    hub_url = f"http://127.0.0.1:{hub_port}"
    hub = subprocess.Popen(
        [sys.executable, "-m", "renkei", "hub", "--data", str(root / "hub"),
         "--port", str(hub_port)], env=env,
    )  # fmt: skip
    lan = Lan(root, env, hub, hub_url, supervisor, ports, data, [hub])

    def enrol(name: str) -> None:
        tls = root / name / "tls"
        shutil.copytree(root / "tls", tls)
        enrol_box(root, hub_url, federation, env, boxes[name], data[name], tls)
        settings_file = data[name] / "discovery.json"
        chosen = json.loads(settings_file.read_text(encoding="utf-8"))
        chosen.update(settings, port=ports[name], name=f"聖籠町 {boxes[name]}")
        settings_file.write_text(json.dumps(chosen, ensure_ascii=False))
        if sync_ports:  # the box↔box sync port, offered to verified peers
            sync = {"listen": f"127.0.0.1:{free_port()}"}
            (data[name] / "sync.json").write_text(json.dumps(sync))

    try:
        _wait(hub_url, hub, root / "ca.crt")
        with ThreadPoolExecutor(max_workers=len(boxes)) as pool:
            for done in [pool.submit(enrol, name) for name in boxes]:
                done.result()
        for name in boxes:
            box_hub = f"http://127.0.0.1:{dead_port}" if name in hub_unreachable else hub_url
            box = subprocess.Popen(
                [sys.executable, "-m", "renkei", "box", "--hub", box_hub, "--town", TOWN,
                 "--port", str(ports[name]), "--data", str(data[name]),
                 "--tls", str(root / name / "tls"), "--discover", "127.0.0.1"], env=env,
            )  # fmt: skip
            lan.processes.append(box)
        for name, process in zip(boxes, lan.processes[1:], strict=True):
            _wait(lan.url(name), process, root / "ca.crt")
        yield lan
    finally:
        for process in reversed(lan.processes):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
