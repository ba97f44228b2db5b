"""The inference model: a small MLP built from a fixed seed, so every child holds the same weights.

numpy is imported inside the functions: the web worker imports this module for the input shape
but only pool children (which cap BLAS threads first) ever load numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from panorama.core.contract import FEATURES

if TYPE_CHECKING:
    import numpy as np

HIDDEN = 256
OUTPUTS = 8
MODEL_NAME = f"mlp-{FEATURES}x{HIDDEN}x{HIDDEN}x{OUTPUTS}"


@dataclass(frozen=True)
class Mlp:
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray

    def predict(self, rows: Sequence[Sequence[float]]) -> list[list[float]]:
        """Class probabilities (softmax) for each row of ``FEATURES`` inputs."""
        import numpy as np

        x = np.asarray(rows, dtype=np.float64)
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        h = np.maximum(h @ self.w2 + self.b2, 0.0)
        logits = h @ self.w3 + self.b3
        # Subtracting the row maximum keeps exp() finite for any input.
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = exp / exp.sum(axis=1, keepdims=True)
        return probs.tolist()


def build_model(seed: int) -> Mlp:
    """He-initialised weights from ``seed``: the same seed gives the same model in every process."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def layer(fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in), rng.standard_normal(fan_out) * 0.01

    w1, b1 = layer(FEATURES, HIDDEN)
    w2, b2 = layer(HIDDEN, HIDDEN)
    w3, b3 = layer(HIDDEN, OUTPUTS)
    return Mlp(w1, b1, w2, b2, w3, b3)
