"""Dockerfile.edge and Dockerfile.cloud, checked statically: pinned base image, multi-stage
(wheels built in a builder, slim runtime), non-root USER, HEALTHCHECK, fonts, data VOLUME,
EXPOSE. Building and running them is firmware/image/build-containers.sh (podman; minutes,
not in the default run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FILES = ["Dockerfile.edge", "Dockerfile.cloud"]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, result = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not joined and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        joined += line
        word, _, rest = joined.partition(" ")
        result.append((word.upper(), rest.strip()))
        joined = ""
    return result


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for instruction in parsed:
        if instruction[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def base_images(parsed: list[tuple[str, str]]) -> list[str]:
    args = dict(a.split("=", 1) for k, a in parsed if k == "ARG" and "=" in a)
    images = []
    for key, value in parsed:
        if key == "FROM":
            image = value.split()[0]
            match = re.fullmatch(r"\$\{?(\w+)\}?", image)
            images.append(args[match.group(1)] if match else image)
    return images


def pinned(image: str) -> bool:
    """A digest, or a dated Debian build tag (bookworm-YYYYMMDD[-slim]); never a moving
    tag like latest, bookworm, 12 or stable-slim."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    return re.fullmatch(r"[a-z]+-\d{8}(-slim)?", tag) is not None


@pytest.fixture(params=FILES)
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, list[tuple[str, str]]]:
    name = request.param
    return name, instructions((REPO / name).read_text())


def test_base_image_is_pinned_debian_12(dockerfile: tuple[str, list[tuple[str, str]]]) -> None:
    name, parsed = dockerfile
    images = base_images(parsed)
    assert images and all(pinned(i) for i in images), (name, images)
    assert all("debian" in i and "bookworm" in i for i in images), images


def test_pin_check_can_fail() -> None:
    assert not pinned("docker.io/library/debian:bookworm-slim")
    assert not pinned("debian")
    assert not pinned("python:3.11-slim")
    assert pinned("debian:bookworm-20250520-slim")
    assert pinned("debian@sha256:" + "a" * 64)


def test_multi_stage_builds_wheels_and_copies_only_the_venv(
    dockerfile: tuple[str, list[tuple[str, str]]],
) -> None:
    _, parsed = dockerfile
    builder, runtime = stages(parsed)
    assert builder[0][1].endswith("AS builder") and runtime[0][1].endswith("AS runtime")
    builder_runs = " ".join(v for k, v in builder if k == "RUN")
    assert "pip wheel" in builder_runs and "--constraint requirements.lock" in builder_runs
    assert "--no-index" in builder_runs
    copies = [v for k, v in runtime if k == "COPY"]
    assert copies == ["--from=builder /opt/renkei/venv /opt/renkei/venv"], copies
    runtime_runs = " ".join(v for k, v in runtime if k == "RUN")
    assert "pip" not in runtime_runs and "build-essential" not in runtime_runs
    assert "rm -rf /var/lib/apt/lists/*" in runtime_runs


def test_runs_as_non_root(dockerfile: tuple[str, list[tuple[str, str]]]) -> None:
    name, parsed = dockerfile
    runtime = stages(parsed)[-1]
    users = [v for k, v in runtime if k == "USER"]
    assert users, f"{name}: no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), name
    # the user exists: created in the runtime stage with that uid
    assert any(k == "RUN" and f"--uid {user}" in v for k, v in runtime), name
    # USER comes after the last RUN (nothing after it runs as root)
    last_user = max(i for i, (k, _) in enumerate(runtime) if k == "USER")
    assert all(k != "RUN" for k, _ in runtime[last_user:]), name


def test_healthcheck_probes_the_health_endpoint(
    dockerfile: tuple[str, list[tuple[str, str]]],
) -> None:
    name, parsed = dockerfile
    (check,) = [v for k, v in parsed if k == "HEALTHCHECK"]
    assert "--start-period=" in check and "--interval=" in check
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[1:3] == ["-m", "firmware.healthcheck"]
    port = re.search(r":(\d+)/api/health$", command[-1])
    assert port, command
    expose = " ".join(v for k, v in parsed if k == "EXPOSE")
    assert f"{port.group(1)}/tcp" in expose
    cmd = " ".join(v for k, v in parsed if k == "CMD")
    assert f"--port {port.group(1)}" in cmd or f'"--port", "{port.group(1)}"' in cmd
    if name == "Dockerfile.edge":
        assert command[-1].startswith("https://"), "the box serves HTTPS only"


def test_data_volume(dockerfile: tuple[str, list[tuple[str, str]]]) -> None:
    _, parsed = dockerfile
    (volume,) = [v for k, v in parsed if k == "VOLUME"]
    assert json.loads(volume) == ["/var/lib/renkei"]
    cmd = " ".join(v for k, v in parsed if k == "CMD")
    assert "/var/lib/renkei/" in cmd


def test_edge_has_the_fonts_and_mdns() -> None:
    parsed = instructions((REPO / "Dockerfile.edge").read_text())
    runtime = stages(parsed)[-1]
    runs = " ".join(v for k, v in runtime if k == "RUN")
    for package in ("fonts-ipamj-mincho", "fonts-ipaexfont", "fontconfig", "cups-client"):
        assert package in runs, package
    assert "5353/udp" in " ".join(v for k, v in parsed if k == "EXPOSE")
