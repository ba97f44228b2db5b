"""The Dockerfile: Debian's Python, multi-stage, hashed deps, non-root, exec-form entrypoints, one
target per component (``make images`` and skaffold build each with its own SERVICE)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra import images
from infra.deploy import chart

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / images.DOCKERFILE).read_text()


def stages() -> dict[str, tuple[str, str]]:
    """name -> (base, body) of every ``FROM <base> AS <name>`` stage of the Dockerfile."""
    parts = re.split(r"^FROM ", TEXT, flags=re.MULTILINE)[1:]
    out = {}
    for part in parts:
        head, _, body = part.partition("\n")
        base, name = re.fullmatch(r"(\S+) AS (\S+)", head.strip()).groups()
        out[name] = (base, body)
    return out


def image(component: str) -> str:
    """What the component's image is made of: the stages its target stands on, in order."""
    chain, name, found = [], component, stages()
    while name in found:
        base, body = found[name]
        chain.insert(0, body)
        name = base
    return "\n".join(chain)


def test_two_stages_from_debian_bookworm_slim_and_a_target_per_component() -> None:
    found = stages()
    assert {name: base for name, (base, _) in found.items()} == {
        "build": "debian:bookworm-slim",
        "runtime": "debian:bookworm-slim",
        **{component: "runtime" for component in images.SERVICES},
    }
    build = found["build"][1]
    assert "python3-venv" in build
    assert "pip install --require-hashes --no-deps --only-binary :all: -r /tmp/requirements.txt" in build
    assert "COPY services/${SERVICE}/requirements.txt" in build
    assert "COPY --from=build /opt/venv /opt/venv" in found["runtime"][1]


def test_copies_only_core_and_the_service_it_is_built_for() -> None:
    sources = re.findall(r"^COPY (?!--from)(\S+)", TEXT, re.MULTILINE)
    assert {s.split("/")[1] for s in sources} == {"core", "${SERVICE}"}
    assert not any("tests" in s for s in sources)


@pytest.mark.parametrize(("component", "service"), images.SERVICES.items())
def test_each_target_is_built_with_its_own_service_and_checks_it(component: str, service: str) -> None:
    args = images.build_args(component)
    assert args[args.index("--target") + 1] == component
    assert f"--build-arg=SERVICE={service}" in args
    # A target built with another service's SERVICE stops the build instead of shipping the wrong code.
    assert f'RUN python3 -c "import panorama.{service}"' in stages()[component][1]


@pytest.mark.parametrize("component", images.SERVICES)
def test_runs_as_a_numeric_non_root_user(component: str) -> None:
    assert re.findall(r"^USER (\S+)", image(component), re.MULTILINE) == ["10001"]
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    name = f"panorama-{component}"
    assert rendered.get("Deployment", name)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("component", images.SERVICES)
def test_exec_form_entrypoint_is_the_command_the_chart_runs(component: str) -> None:
    lines = re.findall(r"^ENTRYPOINT (.+)$", image(component), re.MULTILINE)
    assert len(lines) == 1
    entrypoint = json.loads(lines[0])  # exec form is a JSON array; shell form would not parse
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    command = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    assert entrypoint == command


@pytest.mark.parametrize("component", images.SERVICES)
def test_ffmpeg_only_in_the_worker_and_no_compiler_anywhere(component: str) -> None:
    installed = f"python3 ca-certificates {images.component_build_args(component).get('RUNTIME_PACKAGES', '')}".split()
    assert "install -y --no-install-recommends python3 ca-certificates ${RUNTIME_PACKAGES}" in stages()["runtime"][1]
    assert ("ffmpeg" in installed) == (component == "video-worker")
    # The worker's target fails its build without ffmpeg and ffprobe.
    assert ("command -v ffmpeg && command -v ffprobe" in stages()[component][1]) == (component == "video-worker")
    for compiler in ("gcc", "build-essential", "g++", "-dev "):
        assert compiler not in TEXT


def test_build_context_excludes_everything_but_the_services() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "charts", "loadtests", "services/*/tests"):
        assert path in ignored


def test_hatchling_pin_comes_from_the_locked_dev_requirements() -> None:
    version = images.hatchling_version()
    assert re.fullmatch(r"\d+(\.\d+)+", version)
