"""services/Dockerfile, all four images: Debian's Python, multi-stage, hashed deps, non-root, exec-form entrypoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra import images
from infra.deploy import chart

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / images.DOCKERFILE).read_text()


def parse_stages(text: str) -> dict[str, list[str]]:
    """The stages by name, each its instructions (comments dropped, continuation lines joined)."""
    stages = {}
    for stage in re.split(r"^(?=FROM )", re.sub(r"\\\n\s*", "", text), flags=re.MULTILINE)[1:]:
        lines = [line for line in stage.splitlines() if line.strip() and not line.startswith("#")]
        stages[lines[0].split(" AS ")[1]] = lines
    return stages


STAGES = parse_stages(TEXT)


def stage_chain(stage: str) -> list[str]:
    """The instructions an image's stage inherits and adds, base stage first."""
    base = STAGES[stage][0].split()[1]
    return (stage_chain(base) if base in STAGES else []) + STAGES[stage]


def substituted(lines: list[str], component: str) -> list[str]:
    args = images.build_args(component)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), line) for line in lines]


def test_one_stage_per_image_on_the_shared_runtime() -> None:
    assert list(STAGES) == ["builder", "runtime", *images.IMAGES]
    assert STAGES["builder"][0] == "FROM debian:bookworm-slim AS builder"
    assert STAGES["runtime"][0] == "FROM debian:bookworm-slim AS runtime"
    for component in images.IMAGES:
        assert STAGES[component][0] == f"FROM runtime AS {component}"
        # An image's stage only names its port and its command: what is installed is the shared stages'.
        assert {line.split()[0] for line in STAGES[component][1:]} <= {"ENV", "EXPOSE", "ENTRYPOINT"}


def test_the_builder_installs_the_hashed_requirements_of_the_service() -> None:
    builder = "\n".join(STAGES["builder"])
    assert "python3-venv" in builder
    assert "pip install --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.txt" in builder
    assert "COPY services/${SERVICE}/requirements.txt /tmp/requirements.txt" in builder


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_copies_only_core_and_its_own_service(component: str, service: str) -> None:
    sources = [line.split()[1] for line in substituted(STAGES["builder"], component) if line.startswith("COPY ")]
    assert {s.split("/")[1] for s in sources} == {"core", service}
    assert all((ROOT / s).exists() for s in sources)
    assert not any("tests" in s for s in sources)
    assert not any(line.startswith("COPY ") and "--from" not in line for line in STAGES["runtime"] + STAGES[component])


@pytest.mark.parametrize("component", images.IMAGES)
def test_runs_as_a_numeric_non_root_user(component: str) -> None:
    users = [line.split()[1] for line in stage_chain(component) if line.startswith("USER ")]
    assert users == ["10001"]
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    name = f"panorama-{component}"
    assert rendered.get("Deployment", name)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("component", images.IMAGES)
def test_exec_form_entrypoint_is_the_command_the_chart_runs(component: str) -> None:
    (line,) = [line for line in stage_chain(component) if line.startswith("ENTRYPOINT ")]
    entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))  # exec form is a JSON array; shell form would not parse
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    command = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    assert entrypoint == command


@pytest.mark.parametrize("component", images.IMAGES)
def test_ffmpeg_only_in_the_worker_and_no_compiler_anywhere(component: str) -> None:
    runtime = "\n".join(substituted(stage_chain(component), component))
    assert ("ffmpeg" in runtime) == (component == "video-worker")
    for compiler in ("gcc", "build-essential", "g++", "-dev "):
        assert compiler not in TEXT
        assert compiler not in images.IMAGES[component].runtime_packages


def test_build_context_excludes_everything_but_the_services() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "charts", "loadtests", "services/*/tests"):
        assert path in ignored


def test_hatchling_pin_comes_from_the_locked_dev_requirements() -> None:
    version = images.hatchling_version()
    assert re.fullmatch(r"\d+(\.\d+)+", version)
