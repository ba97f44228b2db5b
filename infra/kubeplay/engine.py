"""``podman kube play`` and the few podman commands the harness needs (``podman`` from PATH)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]


class EngineError(RuntimeError):
    pass


def podman_path() -> str | None:
    return shutil.which("podman")


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    path = podman_path()
    if path is None:
        raise EngineError("podman is not on PATH")
    result = subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise EngineError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def version() -> str:
    return podman("version", "--format", "{{.Client.Version}}").stdout.strip()


def play(objects: list[Object], workdir: Path, name: str) -> Path:
    """Write the objects as one YAML file and ``podman kube play`` it; returns the file."""
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    podman("kube", "play", "--quiet", str(path), timeout=600)
    return path


def down(path: Path) -> None:
    podman("kube", "down", str(path), check=False, timeout=300)


def container_name(obj: Object, container: str) -> str:
    """The name podman 4.3 gives a played container: <pod>-<container>, a Deployment's pod being <name>-pod-0."""
    pod = obj["metadata"]["name"] if obj["kind"] == "Pod" else f"{obj['metadata']['name']}-pod-0"
    return f"{pod}-{container}"


def inspect(container: str) -> dict[str, Any]:
    return json.loads(podman("inspect", container).stdout)[0]


def state(container: str) -> dict[str, Any]:
    return inspect(container)["State"]


def exec_(container: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return podman("exec", container, *command, check=False, timeout=timeout)


def logs(container: str, tail: int | None = None) -> str:
    args = ["logs", *(["--tail", str(tail)] if tail else []), container]
    result = podman(*args, check=False)
    return result.stdout + result.stderr


def diff(container: str) -> list[str]:
    """Paths the container changed in its own (root) layer."""
    out = podman("diff", "--format", "json", container).stdout.strip()
    if not out:
        return []
    changes = json.loads(out)
    return sorted({path for kind in ("changed", "added", "deleted") for path in changes.get(kind) or []})


def volume_mountpoint(volume: str) -> Path:
    return Path(json.loads(podman("volume", "inspect", volume).stdout)[0]["Mountpoint"])


def remove_volume(volume: str) -> None:
    podman("volume", "rm", "-f", volume, check=False)


def remove_secret(secret: str) -> None:
    podman("secret", "rm", secret, check=False)
