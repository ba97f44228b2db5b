"""One set of versions: the tests run the packages the images ship.

``make lock`` resolves every service together into requirements/runtime.txt and compiles the dev
requirements and each service's requirements.txt with it as constraints; these tests fail when a
lockfile drifts from that (edited by hand, or compiled without the constraints).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "io", "compute", "video_worker")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in PIN.findall(path.read_text())}


def test_pins_are_parsed() -> None:
    dev = pins(ROOT / "requirements" / "dev.txt")
    assert len(dev) > 50
    assert {"celery", "fastapi", "pytest"} <= dev.keys()


@pytest.mark.parametrize("service", SERVICES)
def test_dev_requirements_match_the_service_image(service: str) -> None:
    dev = pins(ROOT / "requirements" / "dev.txt")
    image = pins(ROOT / "services" / service / "requirements.txt")
    drift = {name: (dev[name], version) for name, version in image.items() if name in dev and dev[name] != version}
    assert not drift, f"dev.txt vs services/{service}/requirements.txt (dev, image): {drift}; run `make lock`"
    missing = sorted(image.keys() - dev.keys())
    assert not missing, f"services/{service} ships packages the tests never install: {missing}; run `make lock`"


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_takes_the_runtime_set(service: str) -> None:
    runtime = pins(ROOT / "requirements" / "runtime.txt")
    image = pins(ROOT / "services" / service / "requirements.txt")
    drift = {n: (runtime.get(n), v) for n, v in image.items() if runtime.get(n) != v}
    assert not drift, f"runtime.txt vs services/{service}/requirements.txt (runtime, image): {drift}"


def test_the_drift_check_sees_a_difference(tmp_path: Path) -> None:
    # The comparison itself must be able to fail: a lockfile with one version changed is caught.
    image = (ROOT / "services" / "video_worker" / "requirements.txt").read_text()
    celery = pins(ROOT / "services" / "video_worker" / "requirements.txt")["celery"]
    drifted = tmp_path / "requirements.txt"
    drifted.write_text(image.replace(f"celery=={celery}", "celery==0.0.1"))
    dev = pins(ROOT / "requirements" / "dev.txt")
    assert {n for n, v in pins(drifted).items() if n in dev and dev[n] != v} == {"celery"}


def test_the_benchmark_report_names_the_celery_the_images_ship() -> None:
    celery = pins(ROOT / "requirements" / "runtime.txt")["celery"]
    versions = re.search(r"^- Versions: (.*)$", (ROOT / "docs" / "benchmarks.md").read_text(), re.MULTILINE)
    assert versions is not None
    assert f"celery {celery}," in versions.group(1)
