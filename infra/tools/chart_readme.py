"""charts/panorama/README.md's Parameters section, generated from values.yaml's ``## @param`` lines.

    python -m infra.tools.chart_readme            # regenerate the README in place
    python -m infra.tools.chart_readme --check    # exit 1 when the README is stale

The generator is Bitnami's ``@bitnami/readme-generator-for-helm``, pinned (with every dependency,
hashed) by infra/tools/chart-readme/package-lock.json and installed with ``npm ci --ignore-scripts``
into ``.panorama/tools/chart-readme-<version>/`` (gitignored). The lockfile carries no registry
address (``omit-lockfile-registry-resolved`` in that directory's .npmrc): npm uses its configured one.
Maps (``resources``, label selectors) need ``[object]`` after the key, or the generator expects
every key inside them to be documented.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.tools.helm import ToolUnavailable

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "infra" / "tools" / "chart-readme"
FILES = ("package.json", "package-lock.json", ".npmrc")
GENERATOR = "@bitnami/readme-generator-for-helm"
VERSION = json.loads((SOURCE / "package.json").read_text())["dependencies"][GENERATOR]
TOOL_DIR = ROOT / ".panorama" / "tools" / f"chart-readme-{VERSION}"
CHART = ROOT / "charts" / "panorama"
README = CHART / "README.md"


def _script() -> Path:
    return TOOL_DIR / "node_modules" / GENERATOR / "bin" / "index.js"


def ensure() -> Path:
    """The generator's entry script, installed from the lockfile when missing or out of date."""
    current = _script().exists() and all(
        (TOOL_DIR / f).exists() and filecmp.cmp(SOURCE / f, TOOL_DIR / f, shallow=False) for f in FILES
    )
    if not current:
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise ToolUnavailable("node and npm are needed for the chart README generator")
        shutil.rmtree(TOOL_DIR, ignore_errors=True)
        TOOL_DIR.mkdir(parents=True)
        for f in FILES:
            shutil.copyfile(SOURCE / f, TOOL_DIR / f)
        try:
            result = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                cwd=TOOL_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolUnavailable("npm ci of the README generator timed out") from exc
        if result.returncode != 0:
            shutil.rmtree(TOOL_DIR, ignore_errors=True)
            raise ToolUnavailable(f"npm ci of the README generator failed: {result.stderr.strip()[-500:]}")
    installed = json.loads((TOOL_DIR / "node_modules" / GENERATOR / "package.json").read_text())["version"]
    if installed != VERSION:
        raise ToolUnavailable(f"{GENERATOR} {installed} installed, {VERSION} pinned")
    return _script()


def generate(readme: Path = README, values: Path = CHART / "values.yaml") -> str:
    """The README with its Parameters section regenerated (the file itself is left alone)."""
    script = ensure()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "README.md"
        shutil.copyfile(readme, out)
        result = subprocess.run(
            ["node", str(script), "--values", str(values), "--readme", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0 or "must be fixed" in result.stdout:
            raise RuntimeError(f"readme-generator refused {values}:\n{result.stdout}{result.stderr}")
        return out.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the README is stale")
    args = parser.parse_args(argv)
    try:
        text = generate()
    except (ToolUnavailable, RuntimeError) as exc:
        print(f"chart_readme: {exc}", file=sys.stderr)
        return 2
    if text == README.read_text():
        print(f"{README.relative_to(ROOT)} is up to date")
        return 0
    if args.check:
        print(f"{README.relative_to(ROOT)} is stale: run python -m infra.tools.chart_readme", file=sys.stderr)
        return 1
    README.write_text(text)
    print(f"wrote {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
