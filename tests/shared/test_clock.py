"""Trusted time (shared/clock.py): the floor from signed timestamps, refusing a clock behind
it, elapsed uptime, and the supervisor's date confirmation after a power loss."""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.clock import (
    JST,
    MAX_CONFIRMATIONS,
    ClockBehindFloor,
    ClockStateError,
    DateConfirmationRefused,
    TrustedClock,
)

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=JST).timestamp()
DAY = 86_400.0


class FakeTime:
    """A settable wall clock, a monotonic clock and a boot id."""

    def __init__(self, wall: float = T0, boot_id: str = "boot-1") -> None:
        self.wall = wall
        self.mono = 1000.0
        self.boot_id = boot_id

    def clock(self, path: Path) -> TrustedClock:
        return TrustedClock(
            path,
            wall=lambda: self.wall,
            monotonic=lambda: self.mono,
            boot_id_reader=lambda: self.boot_id,
        )


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "box" / "clock.json"


def test_floor_rises_and_never_lowers(fake: FakeTime, state: Path) -> None:
    clock = fake.clock(state)
    assert clock.floor is None
    clock.observe_signed_time(T0 - 100)
    assert clock.floor == T0 - 100
    clock.observe_signed_time(T0 - 50)
    assert clock.floor == T0 - 50
    clock.observe_signed_time(T0 - 3600)
    assert clock.floor == T0 - 50
    assert clock.now() == T0


def test_wall_clock_behind_floor_is_refused(fake: FakeTime, state: Path) -> None:
    clock = fake.clock(state)
    clock.observe_signed_time(T0 + 10)  # a signed statement newer than our clock
    with pytest.raises(ClockBehindFloor) as info:
        clock.now()
    message = str(info.value)
    assert "監督者" in message and "日付" in message
    assert info.value.floor == T0 + 10
    with pytest.raises(ClockBehindFloor):
        clock.today()
    fake.wall = T0 + 11
    assert clock.now() == T0 + 11
    assert clock.today() == date(2026, 4, 1)


def test_state_survives_reopening(fake: FakeTime, state: Path) -> None:
    clock = fake.clock(state)
    clock.observe_signed_time(T0 - 5)
    reopened = fake.clock(state)
    assert reopened.floor == T0 - 5
    assert not reopened.needs_date_confirmation  # same boot: a process restart only
    fake.wall = T0 - 6
    with pytest.raises(ClockBehindFloor):
        reopened.now()
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert saved["floor"] == T0 - 5 and saved["boot_id"] == "boot-1"
    assert [p.name for p in state.parent.iterdir()] == ["clock.json"]  # no temp left over


def test_power_loss_needs_confirmation_by_supervisor(fake: FakeTime, state: Path) -> None:
    fresh = fake.clock(state)
    assert not fresh.needs_date_confirmation  # first start, installed by IT staff
    fresh.observe_signed_time(T0 - DAY)

    fake.boot_id = "boot-2"  # power cut, reboot
    fake.wall = T0 + 2 * DAY
    clock = fake.clock(state)
    assert clock.needs_date_confirmation
    # still needed after a mere process restart in the same boot
    clock = fake.clock(state)
    assert clock.needs_date_confirmation

    record = clock.confirm_date("sup-suzuki", date(2026, 4, 3))
    assert not clock.needs_date_confirmation
    assert record.login_id == "sup-suzuki"
    assert record.date == date(2026, 4, 3)
    assert record.at == T0 + 2 * DAY
    assert record.boot_id == "boot-2"

    reopened = fake.clock(state)
    assert not reopened.needs_date_confirmation
    assert reopened.confirmations == (record,)


def test_confirmation_behind_floor_is_refused(fake: FakeTime, state: Path) -> None:
    fake.clock(state).observe_signed_time(T0)
    fake.boot_id = "boot-2"
    clock = fake.clock(state)
    with pytest.raises(DateConfirmationRefused) as info:
        clock.confirm_date("sup-suzuki", date(2026, 3, 31))
    assert "2026年03月31日" in str(info.value)
    assert clock.needs_date_confirmation
    assert clock.confirmations == ()


def test_confirmation_of_a_date_the_clock_does_not_show_is_refused(
    fake: FakeTime, state: Path
) -> None:
    fake.boot_id = "boot-0"
    fake.clock(state)
    fake.boot_id = "boot-1"
    clock = fake.clock(state)
    with pytest.raises(DateConfirmationRefused, match="時計の修正"):
        clock.confirm_date("sup-suzuki", date(2026, 4, 5))
    assert clock.needs_date_confirmation


def test_confirmation_when_wall_clock_is_behind_floor_is_refused(
    fake: FakeTime, state: Path
) -> None:
    fake.clock(state).observe_signed_time(T0 + 60)
    fake.boot_id = "boot-2"
    clock = fake.clock(state)
    with pytest.raises(ClockBehindFloor):
        clock.confirm_date("sup-suzuki", date(2026, 4, 1))
    assert clock.needs_date_confirmation


def test_confirmations_are_bounded(fake: FakeTime, state: Path) -> None:
    for i in range(MAX_CONFIRMATIONS + 3):
        fake.boot_id = f"boot-{i}"
        fake.clock(state).confirm_date(f"sup-{i}", date(2026, 4, 1))
    kept = fake.clock(state).confirmations
    assert len(kept) == MAX_CONFIRMATIONS
    assert kept[-1].login_id == f"sup-{MAX_CONFIRMATIONS + 2}"


def test_elapsed_counts_monotonic_time_when_wall_clock_jumps(fake: FakeTime, state: Path) -> None:
    clock = fake.clock(state)
    mark = clock.mark()
    fake.mono += 3600
    fake.wall -= 10 * DAY  # someone sets the date back ...
    assert clock.elapsed_since(mark) == 3600
    fake.wall += 30 * DAY  # ... or forward
    fake.mono += 60
    assert clock.elapsed_since(mark) == 3660
    assert clock.uptime == 3660


def test_unreadable_state_is_an_error_not_a_reset(fake: FakeTime, state: Path) -> None:
    fake.clock(state).observe_signed_time(T0)
    state.write_text("{not json", encoding="utf-8")
    with pytest.raises(ClockStateError) as info:
        fake.clock(state)
    assert "システム管理者" in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "1767225600"])
def test_bad_timestamps_are_rejected(fake: FakeTime, state: Path, bad: object) -> None:
    clock = fake.clock(state)
    with pytest.raises((TypeError, ValueError)):
        clock.observe_signed_time(bad)  # type: ignore[arg-type]
    assert clock.floor is None


def test_default_boot_id_reader_reads_the_kernel(state: Path) -> None:
    clock = TrustedClock(state)
    boot_id = json.loads(state.read_text(encoding="utf-8"))["boot_id"]
    assert len(boot_id) == 36 and boot_id.count("-") == 4
    assert not clock.needs_date_confirmation
    assert not TrustedClock(state).needs_date_confirmation


@settings(max_examples=40, deadline=None)  # every raise is an fsync'd write
@given(
    st.lists(
        st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=20,
    )
)
def test_floor_is_the_max_of_observed_timestamps(timestamps: list[float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeTime()
        path = Path(tmp) / "clock.json"
        clock = fake.clock(path)
        for ts in timestamps:
            clock.observe_signed_time(ts)
            assert clock.floor is not None
        assert clock.floor == max(timestamps)
        assert fake.clock(path).floor == max(timestamps)
