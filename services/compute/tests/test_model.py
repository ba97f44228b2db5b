import math

from panorama.compute.model import FEATURES, OUTPUTS, build_model

ROWS = [[(i * FEATURES + j) % 7 / 3.0 - 1.0 for j in range(FEATURES)] for i in range(5)]


def test_same_seed_builds_the_same_model() -> None:
    assert build_model(7).predict(ROWS) == build_model(7).predict(ROWS)


def test_different_seeds_give_different_outputs() -> None:
    assert build_model(7).predict(ROWS) != build_model(8).predict(ROWS)


def test_outputs_are_probabilities_per_row() -> None:
    outputs = build_model(7).predict(ROWS)
    assert len(outputs) == len(ROWS)
    for row in outputs:
        assert len(row) == OUTPUTS
        assert all(0.0 <= p <= 1.0 for p in row)
        assert math.isclose(sum(row), 1.0, rel_tol=1e-9)


def test_huge_inputs_do_not_overflow_the_softmax() -> None:
    outputs = build_model(7).predict([[1e6] * FEATURES])
    assert all(math.isfinite(p) for p in outputs[0])
