"""Every service Dockerfile: Debian's Python, multi-stage, hashed deps, non-root, exec-form entrypoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra import images
from infra.deploy import chart

ROOT = Path(__file__).resolve().parents[2]


def dockerfile(service: str) -> str:
    return (ROOT / "services" / service / "Dockerfile").read_text()


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_multi_stage_from_debian_bookworm_slim(component: str, service: str) -> None:
    text = dockerfile(service)
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["debian:bookworm-slim", "debian:bookworm-slim"]
    assert "python3-venv" in text
    assert "pip install --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.txt" in text
    assert f"COPY services/{service}/requirements.txt" in text


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_copies_only_core_and_its_own_service(component: str, service: str) -> None:
    sources = re.findall(r"^COPY (?!--from)(\S+)", dockerfile(service), re.MULTILINE)
    assert {s.split("/")[1] for s in sources} == {"core", service}
    assert not any("tests" in s for s in sources)


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_runs_as_a_numeric_non_root_user(component: str, service: str) -> None:
    users = re.findall(r"^USER (\S+)", dockerfile(service), re.MULTILINE)
    assert users == ["10001"]
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    name = f"panorama-{component}"
    assert rendered.get("Deployment", name)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_exec_form_entrypoint_is_the_command_the_chart_runs(component: str, service: str) -> None:
    line = re.search(r"^ENTRYPOINT (.+)$", dockerfile(service), re.MULTILINE).group(1)
    entrypoint = json.loads(line)  # exec form is a JSON array; shell form would not parse
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    command = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    assert entrypoint == command


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_ffmpeg_only_in_the_worker_and_no_compiler_anywhere(component: str, service: str) -> None:
    runtime = dockerfile(service).split("\nFROM ")[-1]
    assert ("ffmpeg" in runtime) == (component == "video-worker")
    for compiler in ("gcc", "build-essential", "g++", "-dev "):
        assert compiler not in dockerfile(service)


def test_build_context_excludes_everything_but_the_services() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "charts", "loadtests", "services/*/tests"):
        assert path in ignored


def test_hatchling_pin_comes_from_the_locked_dev_requirements() -> None:
    version = images.hatchling_version()
    assert re.fullmatch(r"\d+(\.\d+)+", version)
