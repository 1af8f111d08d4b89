"""The box's counter configuration: which printer each terminal prints to, and the
town-wide modes the counter applies (disaster mode, the disaster fee exemption, a declared
一部負担金免除).

Why a file of its own: none of it is personal data and all of it must survive a restart
with every town sealed, so it is plain JSON in the box's data folder (``counter.json``),
written atomically by the web front (supervisors' screens) and read by the front and by
the towns' workers. Who changed what is in the audit log (CONFIG_CHANGE), not here.

    {"stale_after_minutes": 120,
     "terminals": {"T02": {"addresses": ["10.233.0.2"], "queue": "office-a4",
                           "printer": "P01", "label": "住民課 窓口2"}},
     "towns": {"15307": {"disaster_mode": false, "fee_exemption": true,
                         "copay_exemption": {"disaster": "…", "valid_from": "2026-11-26",
                                             "valid_until": "2027-02-28",
                                             "reason": "住家の全半壊等"}}}}

``stale_after_minutes`` is the data age past which every counter screen turns amber.
A terminal is recognised by its address on the town hall's LAN (the box sees the
browser's address); an address no terminal lists is the default terminal ``T01`` with no
printer (download only). ``terminal`` and ``printer`` are the codes printed in every
発行番号 (A–Z, 0–9); ``queue`` is the CUPS queue (``lpadmin -p QUEUE … -m everywhere``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from shared.issuance import CopayExemption, Policy

FILE_NAME = "counter.json"
DEFAULT_TERMINAL = "T01"
DEFAULT_PRINTER = "P01"
_CODE = re.compile(r"^[A-Z0-9]{1,8}$")
_QUEUE = re.compile(r"^[A-Za-z0-9_.-]{1,127}$")  # CUPS queue names: no spaces, / or #
_LOCK = threading.RLock()


class ConfigError(Exception):
    """A setting that cannot be stored (the message is for the supervisor)."""


@dataclass(frozen=True, slots=True)
class Terminal:
    code: str = DEFAULT_TERMINAL
    queue: str = ""  # "" = no printer: download only
    printer: str = DEFAULT_PRINTER
    label: str = ""
    addresses: tuple[str, ...] = ()

    @property
    def can_print(self) -> bool:
        return bool(self.queue)


@dataclass(frozen=True, slots=True)
class TownModes:
    disaster_mode: bool = False
    fee_exemption: bool = False
    copay_exemption: CopayExemption | None = None


@dataclass(slots=True)
class CounterConfig:
    terminals: dict[str, Terminal] = field(default_factory=dict)
    towns: dict[str, TownModes] = field(default_factory=dict)
    # Screens turn amber when the data is older than this (the rules' stale age).
    stale_after_minutes: int = int(Policy().registry_stale_after.total_seconds() // 60)

    # ------------------------------------------------------------------ reading

    def terminal_for(self, address: str) -> Terminal:
        for terminal in self.terminals.values():
            if address in terminal.addresses:
                return terminal
        return Terminal()

    def modes(self, town: str) -> TownModes:
        return self.towns.get(town, TownModes())

    # ------------------------------------------------------------------ changing

    def set_terminal(
        self, code: str, *, queue: str, printer: str, addresses: list[str], label: str = ""
    ) -> Terminal:
        """Map a terminal to a CUPS queue (a supervisor's choice)."""
        if not _CODE.match(code) or not _CODE.match(printer):
            raise ConfigError(
                "端末とプリンタの記号は半角英大文字・数字8文字以内です（例 T02, P01）。"
            )
        if queue and not _QUEUE.match(queue):
            raise ConfigError(f"プリンタのキュー名「{queue}」は使えません。")
        taken = {a for c, t in self.terminals.items() if c != code for a in t.addresses}
        clash = sorted(taken & set(addresses))
        if clash:
            raise ConfigError(f"アドレス {', '.join(clash)} は別の端末に登録されています。")
        terminal = Terminal(code, queue, printer, label[:60], tuple(a.strip() for a in addresses))
        self.terminals[code] = terminal
        return terminal

    def remove_terminal(self, code: str) -> None:
        self.terminals.pop(code, None)

    def set_modes(self, town: str, modes: TownModes) -> None:
        self.towns[town] = modes

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "stale_after_minutes": self.stale_after_minutes,
            "terminals": {
                c: {**asdict(t), "addresses": list(t.addresses)} for c, t in self.terminals.items()
            },
            "towns": {
                town: {
                    "disaster_mode": m.disaster_mode,
                    "fee_exemption": m.fee_exemption,
                    "copay_exemption": _exemption_json(m.copay_exemption),
                }
                for town, m in self.towns.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CounterConfig:
        config = cls()
        if "stale_after_minutes" in data:
            config.stale_after_minutes = max(1, int(data["stale_after_minutes"]))
        for code, t in dict(data.get("terminals", {})).items():
            config.terminals[code] = Terminal(
                code=code,
                queue=str(t.get("queue", "")),
                printer=str(t.get("printer", DEFAULT_PRINTER)),
                label=str(t.get("label", "")),
                addresses=tuple(str(a) for a in t.get("addresses", [])),
            )
        for town, m in dict(data.get("towns", {})).items():
            config.towns[town] = TownModes(
                disaster_mode=bool(m.get("disaster_mode")),
                fee_exemption=bool(m.get("fee_exemption")),
                copay_exemption=_exemption(m.get("copay_exemption")),
            )
        return config


def _exemption_json(e: CopayExemption | None) -> dict[str, str] | None:
    if e is None:
        return None
    return {
        "disaster": e.disaster,
        "valid_from": e.valid_from.isoformat(),
        "valid_until": e.valid_until.isoformat(),
        "reason": e.reason,
    }


def _exemption(data: Any) -> CopayExemption | None:
    if not data:
        return None
    return CopayExemption(
        disaster=str(data["disaster"]),
        valid_from=date.fromisoformat(data["valid_from"]),
        valid_until=date.fromisoformat(data["valid_until"]),
        reason=str(data.get("reason") or "住家の全半壊等"),
    )


def load(data_dir: Path) -> CounterConfig:
    path = data_dir / FILE_NAME
    try:
        return CounterConfig.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return CounterConfig()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} を読めません: {exc}") from exc


def save(data_dir: Path, config: CounterConfig) -> None:
    """Write atomically (a reader never sees half a file)."""
    text = json.dumps(config.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
    with _LOCK:
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".counter-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, data_dir / FILE_NAME)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def update(data_dir: Path, change: Any) -> CounterConfig:
    """Load, apply `change(config)`, save; returns the new configuration."""
    with _LOCK:
        config = load(data_dir)
        change(config)
        save(data_dir, config)
    return config
