"""`renkei update build|verify|install|rollback` end to end through the CLI, help text on
every action and option, and the health probe (`python -m firmware.healthcheck`)."""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from firmware import healthcheck
from renkei.cli import build_parser, main


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_update_action_and_option_has_help() -> None:
    update = _actions(build_parser())["update"]
    actions = _actions(update)
    assert set(actions) == {"build", "verify", "install", "rollback"}
    for name, sub in actions.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"update {name} {action.dest} has no help"


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    key = SigningKey.generate()
    secret, public = tmp_path / "release.key", tmp_path / "release-key.pub"
    secret.write_text(bytes(key).hex() + "\n")
    public.write_text(bytes(key.verify_key).hex() + "\n")
    return secret, public


def test_build_verify_install_rollback_through_the_cli(
    tmp_path: Path, dummy_wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    secret, public = _keys(tmp_path)
    root = tmp_path / "opt-renkei"
    out = tmp_path / "bundles"
    for version in ("1.0.0", "3.0.0"):
        argv = ["update", "build", str(dummy_wheels[version]), "--version", version]
        assert main([*argv, "--signing-key", str(secret), "--out", str(out)]) == 0
    one, three = out / "renkei-update-1.0.0.tar", out / "renkei-update-3.0.0.tar"
    common = ["--key", str(public), "--root", str(root)]

    assert main(["update", "verify", str(one), *common]) == 0
    assert "OK: version 1.0.0" in capsys.readouterr().out
    health = f"{sys.executable} -c pass"
    assert main(["update", "install", str(one), *common, "--health-cmd", health]) == 0
    assert main(["update", "install", str(three), *common, "--health-cmd", health]) == 0
    assert os.readlink(root / "current") == "versions/3.0.0"

    # the installed version is read from --root: 1.0.0 is now a downgrade
    assert main(["update", "verify", str(one), *common]) == 1
    assert "not newer" in capsys.readouterr().err

    assert main(["update", "rollback", "--root", str(root), "--no-restart"]) == 0
    assert os.readlink(root / "current") == "versions/1.0.0"


def test_cli_refuses_a_tampered_bundle_and_a_failing_health_command(
    tmp_path: Path, dummy_wheels: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    secret, public = _keys(tmp_path)
    root = tmp_path / "r"
    out = tmp_path / "b"
    for version in ("1.0.0", "3.0.0"):
        argv = ["update", "build", str(dummy_wheels[version]), "--version", version]
        assert main([*argv, "--signing-key", str(secret), "--out", str(out)]) == 0
    common = ["--key", str(public), "--root", str(root)]
    ok = f"{sys.executable} -c pass"
    assert main(["update", "install", str(out / "renkei-update-1.0.0.tar"), *common,
                 "--health-cmd", ok]) == 0  # fmt: skip

    tampered = tmp_path / "tampered.tar"
    source = out / "renkei-update-3.0.0.tar"
    with tarfile.open(source) as tar:
        wheel = tar.getmembers()[-1]
    data = bytearray(source.read_bytes())
    data[wheel.offset_data + wheel.size // 2] ^= 0xFF  # one byte inside the wheel
    tampered.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["update", "install", str(tampered), *common, "--health-cmd", ok]) == 1
    assert "refused" in capsys.readouterr().err

    failing = f"{sys.executable} -c 'raise SystemExit(1)'"
    three = str(out / "renkei-update-3.0.0.tar")
    assert main(["update", "install", three, *common, "--health-cmd", failing]) == 1
    assert "rolled back to 1.0.0" in capsys.readouterr().err
    assert os.readlink(root / "current") == "versions/1.0.0"


def _app(status: str) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": status})

    return Starlette(routes=[Route("/api/health", health)])


def test_healthcheck_probe() -> None:
    from servers import free_port, serve

    with serve(_app("ok")) as url:
        assert healthcheck.main([f"{url}/api/health"]) == 0
    with serve(_app("degraded")) as url:
        assert healthcheck.main([f"{url}/api/health"]) == 1
        assert healthcheck.main([f"{url}/nowhere"]) == 1
    assert healthcheck.main([f"http://127.0.0.1:{free_port()}/api/health", "--timeout", "2"]) == 1
