"""`make images`: build every service image with the podman or docker on the PATH and report sizes.

    python infra/images.py [--only gateway,io] [--tag ci] [--json PATH]

``PANORAMA_CONTAINER_TOOL`` chooses the tool (a name on the PATH or a path); unset, podman if there
is one, else docker.

Images are built from the repository root's ``Dockerfile``, one target per component (``--target
io --build-arg SERVICE=io``), tagged ``panorama/<component>:<tag>``; the build backend version comes
from requirements/dev.txt so the image builds the wheels with the pinned hatchling.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# component (image name and the Dockerfile's target) -> service directory (its SERVICE build argument)
SERVICES = {"gateway": "gateway", "io": "io", "compute": "compute", "video-worker": "video_worker"}
DOCKERFILE = "Dockerfile"
# What each component runs besides Python (the runtime stage's RUNTIME_PACKAGES); skaffold.yaml says the same.
RUNTIME_PACKAGES = {"video-worker": "ffmpeg"}


def component_build_args(component: str) -> dict[str, str]:
    """The Dockerfile's build arguments that make ``component``'s image (skaffold's ``buildArgs``)."""
    args = {"SERVICE": SERVICES[component]}
    if component in RUNTIME_PACKAGES:
        args["RUNTIME_PACKAGES"] = RUNTIME_PACKAGES[component]
    return args


TOOL_VARIABLE = "PANORAMA_CONTAINER_TOOL"
TOOLS = ("podman", "docker")


class NoContainerTool(RuntimeError):
    """Neither podman nor docker (nor the tool PANORAMA_CONTAINER_TOOL names) is on the PATH."""


def container_tool() -> str:
    """The podman or docker executable to build and run the images with."""
    chosen = os.environ.get(TOOL_VARIABLE, "").strip()
    for name in [chosen] if chosen else TOOLS:
        found = shutil.which(name)
        if found:
            return found
    wanted = f"{TOOL_VARIABLE}={chosen} is not an executable" if chosen else "neither podman nor docker is on the PATH"
    raise NoContainerTool(f"{wanted}; install one, or set {TOOL_VARIABLE} to its path")


def hatchling_version() -> str:
    match = re.search(r"^hatchling==(\S+)", (ROOT / "requirements" / "dev.txt").read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError("requirements/dev.txt pins no hatchling; run `make lock`")
    return match.group(1)


def image_name(component: str, tag: str) -> str:
    return f"panorama/{component}:{tag}"


def build_args(component: str) -> list[str]:
    """What ``build`` passes besides the tool and the tag: the target and its service, the pinned backend."""
    args = {**component_build_args(component), "HATCHLING_VERSION": hatchling_version()}
    return ["--target", component, *(f"--build-arg={name}={value}" for name, value in args.items()), "-f", DOCKERFILE]


def build(component: str, tag: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [container_tool(), "build", *build_args(component), "-t", image_name(component, tag), "."], cwd=ROOT, check=True
    )
    return time.monotonic() - started


def size_bytes(component: str, tag: str) -> int:
    out = subprocess.run(
        [container_tool(), "image", "inspect", "--format", "{{.Size}}", image_name(component, tag)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated components (default: all)")
    parser.add_argument("--tag", default="ci")
    parser.add_argument("--json", help="write the sizes and build times here")
    args = parser.parse_args(argv)
    components = args.only.split(",") if args.only else list(SERVICES)
    unknown = set(components) - set(SERVICES)
    if unknown:
        parser.error(f"unknown component(s) {sorted(unknown)}; choose from {sorted(SERVICES)}")
    try:
        print(f"images: building with {container_tool()}", flush=True)
    except NoContainerTool as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    report = {}
    for component in components:
        seconds = build(component, args.tag)
        report[component] = {"image": image_name(component, args.tag), "build_s": round(seconds, 1)}
        report[component]["size_mb"] = round(size_bytes(component, args.tag) / 1e6, 1)
    print(f"\n{'image':<28} {'size (MB)':>10} {'build (s)':>10}")
    for row in report.values():
        print(f"{row['image']:<28} {row['size_mb']:>10} {row['build_s']:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
