import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "configuration_doc.py"


def test_configuration_page_matches_the_settings_classes() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_documented_variable_has_a_meaning() -> None:
    page = (SCRIPT.parents[1] / "docs" / "configuration.md").read_text()
    blank = [line for line in page.splitlines() if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert not blank, "settings without a description: " + ", ".join(line.split("`")[1] for line in blank)
