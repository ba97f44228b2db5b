"""charts/panorama/README.md is what @bitnami/readme-generator-for-helm makes of values.yaml.

Skipped when npm cannot fetch the generator, except with PANORAMA_REQUIRE_NPM_TOOLS=1 (CI).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from infra.tools import chart_readme
from infra.tools.helm import ToolUnavailable

LOCK = chart_readme.SOURCE / "package-lock.json"


@pytest.fixture(scope="module")
def generator() -> Path:
    try:
        return chart_readme.ensure()
    except ToolUnavailable as exc:
        if os.environ.get("PANORAMA_REQUIRE_NPM_TOOLS") == "1":
            pytest.fail(f"PANORAMA_REQUIRE_NPM_TOOLS=1 but the README generator is unavailable: {exc}")
        pytest.skip(f"the README generator could not be installed with npm: {exc}")


def test_the_chart_readme_is_generated_from_values(generator: Path) -> None:
    assert chart_readme.generate() == chart_readme.README.read_text(), (
        "charts/panorama/README.md is stale: run python -m infra.tools.chart_readme"
    )


def test_a_changed_description_makes_the_readme_stale(generator: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    text = (chart_readme.CHART / "values.yaml").read_text()
    assert "## @param logLevel Log level of every service" in text
    values.write_text(text.replace("## @param logLevel Log level of every service", "## @param logLevel Changed"))
    readme = tmp_path / "README.md"
    shutil.copyfile(chart_readme.README, readme)
    regenerated = chart_readme.generate(readme, values)
    assert regenerated != chart_readme.README.read_text()
    assert "| `logLevel` " in regenerated
    assert "Changed" in regenerated


def test_an_undocumented_key_is_refused(generator: Path, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text((chart_readme.CHART / "values.yaml").read_text() + "undocumentedKey: 1\n")
    with pytest.raises(RuntimeError, match="undocumentedKey"):
        chart_readme.generate(chart_readme.README, values)


def test_the_generator_is_pinned_with_hashes_and_no_registry_address() -> None:
    lock = json.loads(LOCK.read_text())
    packages = {name: meta for name, meta in lock["packages"].items() if name}
    assert packages[f"node_modules/{chart_readme.GENERATOR}"]["version"] == "2.7.2"
    for name, meta in packages.items():
        assert meta.get("integrity", "").startswith("sha512-"), name
        assert "resolved" not in meta, name
    assert "registry" not in LOCK.read_text()
