"""infra tests import the deploy tooling from the repository checkout."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    # The repository root is not an installed package; infra/ is imported from the checkout.
    sys.path.insert(0, str(ROOT))
