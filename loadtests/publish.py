"""Put a `make bench` report into docs/benchmarks.md (the "Latest run" part) with its plots.

    .venv/bin/python loadtests/publish.py loadtests/results/<timestamp> [--note "text above the report"]

Everything in docs/benchmarks.md after the "## Latest run" heading is replaced; the PNGs are copied
to docs/img/bench-<name>.png so the page renders on any forge.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
MARKER = "## Latest run\n"


def publish(results: Path, note: str = "") -> None:
    report = (results / "report.md").read_text()
    for png in sorted(results.glob("*.png")):
        shutil.copyfile(png, IMG / f"bench-{png.name}")
    body = report.split("\n", 1)[1]  # the report's own title gives way to the page's heading
    body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", body, flags=re.MULTILINE)
    body = re.sub(r"\]\(([\w.-]+\.png)\)", r"](img/bench-\1)", body)
    head = PAGE.read_text().split(MARKER, 1)[0]
    stamp = report.splitlines()[0].removeprefix("# Panorama benchmark report — ")
    intro = f"From `{results.relative_to(ROOT) if results.is_relative_to(ROOT) else results.name}` ({stamp})."
    PAGE.write_text(head + MARKER + "\n" + intro + "\n\n" + (note.strip() + "\n\n" if note else "") + body.lstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a loadtests/results/<timestamp> directory")
    parser.add_argument("--note", default="", help="a paragraph to put above the report")
    args = parser.parse_args()
    publish(args.results.resolve(), args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
