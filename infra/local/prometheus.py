"""A local Prometheus (Debian's ``prometheus`` binary) scraping the suite with the chart's alert rules.

Used by ``make up`` (monitoring/prometheus.yml: the fixed local ports) and by the real-Prometheus
test (a generated config for the test's free ports, and a copy of the rules with ``for:`` shortened).
Series get the labels the rules and the dashboard group by: ``service`` and ``instance``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts/panorama/files/panorama-rules.yaml"
LOCAL_CONFIG = ROOT / "monitoring/prometheus.yml"
HINT = (
    "prometheus: not installed, so no metrics UI and no alerts. To get one: apt install prometheus "
    "(Debian/Ubuntu; or any Prometheus 2.x binary on PATH), then re-run make up"
)


def binary() -> str | None:
    return shutil.which("prometheus")


def config(targets: Mapping[str, str], rule_files: list[str], *, interval: str = "5s") -> dict[str, object]:
    """Scrape ``{service: "host:port"}`` every ``interval``, evaluate the rules as often."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {
                "job_name": "panorama",
                "static_configs": [
                    {"targets": [target], "labels": {"service": service, "instance": service}}
                    for service, target in targets.items()
                ],
            }
        ],
    }


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def shortened_rules(dest: Path, max_for: float) -> Path:
    """A copy of the rules with every ``for:`` at most ``max_for`` seconds (tests cannot wait minutes)."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule and seconds(rule["for"]) > max_for:
                rule["for"] = f"{max_for:g}s"
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def command(config_file: Path, data_dir: Path, listen: str) -> list[str]:
    exe = binary()
    if exe is None:
        raise FileNotFoundError(HINT)
    return [
        exe,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={listen}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]


def check_config(config_file: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool:
        subprocess.run([promtool, "check", "config", str(config_file)], check=True, capture_output=True)
