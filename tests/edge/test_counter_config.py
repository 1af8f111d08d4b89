"""The box's counter configuration: terminals mapped to CUPS queues by address, the
town's modes, atomic round trips and refused settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from edge import counter_config
from edge.counter_config import ConfigError, CounterConfig, TownModes
from shared.issuance import CopayExemption


def test_terminals_by_address_and_a_default_without_printer(tmp_path: Path) -> None:
    def change(config: CounterConfig) -> None:
        config.set_terminal("T02", queue="office-a4", printer="P01", addresses=["10.0.0.2"])
        config.set_modes(
            "15307",
            TownModes(fee_exemption=True, copay_exemption=CopayExemption(
                "地震", date(2026, 11, 26), date(2027, 2, 28))),
        )  # fmt: skip

    counter_config.update(tmp_path, change)
    loaded = counter_config.load(tmp_path)
    assert loaded.stale_after_minutes == 120  # the rules' stale age by default
    assert loaded.terminal_for("10.0.0.2").queue == "office-a4"
    unknown = loaded.terminal_for("10.0.0.9")
    assert unknown.code == "T01" and not unknown.can_print
    assert loaded.modes("15307").copay_exemption == CopayExemption(
        "地震", date(2026, 11, 26), date(2027, 2, 28)
    )
    assert loaded.modes("15405") == TownModes()
    assert [p.name for p in tmp_path.iterdir()] == ["counter.json"]  # no temp file left


def test_bad_settings_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    config = CounterConfig()
    config.set_terminal("T02", queue="a", printer="P01", addresses=["10.0.0.2"])
    with pytest.raises(ConfigError):
        config.set_terminal("T03", queue="b", printer="P01", addresses=["10.0.0.2"])
    with pytest.raises(ConfigError):
        config.set_terminal("t 3", queue="b", printer="P01", addresses=[])
    with pytest.raises(ConfigError):
        config.set_terminal("T03", queue="bad queue/name", printer="P01", addresses=[])
    (tmp_path / "counter.json").write_text("{not json")
    with pytest.raises(ConfigError):
        counter_config.load(tmp_path)
