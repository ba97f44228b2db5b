"""`make images` builds with the podman or docker on the PATH; PANORAMA_CONTAINER_TOOL chooses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra import images


def executables(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    return folder


def test_podman_first_then_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANORAMA_CONTAINER_TOOL", raising=False)
    both, docker_only = executables(tmp_path / "a", "podman", "docker"), executables(tmp_path / "b", "docker")
    monkeypatch.setenv("PATH", str(both))
    assert images.container_tool() == str(both / "podman")
    monkeypatch.setenv("PATH", str(docker_only))
    assert images.container_tool() == str(docker_only / "docker")


def test_the_variable_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = executables(tmp_path, "podman", "docker")
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("PANORAMA_CONTAINER_TOOL", "docker")
    assert images.container_tool() == str(folder / "docker")


def test_without_either_make_images_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANORAMA_CONTAINER_TOOL", raising=False)
    monkeypatch.setenv("PATH", str(executables(tmp_path, "ls")))
    with pytest.raises(images.NoContainerTool, match="neither podman nor docker is on the PATH"):
        images.container_tool()
    assert images.main(["--only", "gateway"]) == 2


def test_nothing_but_ci_names_a_path_beside_the_repository() -> None:
    # The host's own podman preparation is .ci/run's business alone; a clone has nothing beside it.
    root = Path(images.__file__).resolve().parents[1]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    assert "Makefile" in tracked
    beside = "../" + "shared"  # spelt in two pieces, so that this file does not name it either
    naming = [name for name in tracked if name != ".ci/run" and beside in (root / name).read_text(errors="replace")]
    assert naming == []
