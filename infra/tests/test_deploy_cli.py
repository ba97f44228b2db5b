"""`python -m infra.deploy` (make render / make deploy) from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from panorama.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def deploy(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.deploy", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_render_checks_every_ci_values_file() -> None:
    result = deploy("render")
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("kind", "minikube", "production"):
        assert f"ok   {mode}-values.yaml" in result.stdout


def test_render_writes_manifests_that_parse(tmp_path: Path) -> None:
    result = deploy("render", "-f", "charts/panorama/ci/kind-values.yaml", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    objects = list(yaml.safe_load_all((tmp_path / "kind-values.yaml").read_text()))
    assert {"Deployment", "Service", "NetworkPolicy", "Job"} <= {o["kind"] for o in objects}


def test_render_of_an_over_committed_plan_fails_with_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(yaml.safe_dump({"io": {"autoscaling": {"enabled": True, "maxReplicas": 20}}}))
    result = deploy("render", "-f", "charts/panorama/ci/kind-values.yaml", "-f", str(bad))
    assert result.returncode == 1
    assert "over by" in result.stdout
    assert "raise database.maxConnections" in result.stdout


def test_install_against_an_unreachable_cluster_says_so(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    result = deploy("install", "--kubeconfig", str(kubeconfig), "--timeout", "10", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cluster is unreachable" in result.stdout
