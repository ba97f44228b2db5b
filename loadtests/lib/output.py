"""How every standalone bench hands over its result: the JSON to ``--out``, or to stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    if out:
        out.write_text(text + "\n")
    else:
        print(text)
