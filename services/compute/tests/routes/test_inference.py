import pytest
from fastapi.testclient import TestClient

from panorama.compute.model import FEATURES, MODEL_NAME, OUTPUTS, build_model
from panorama.core.contract import MAX_ROWS

ROWS = [[((i + 1) * (j + 3)) % 11 / 5.0 - 1.0 for j in range(FEATURES)] for i in range(16)]


def test_inference_matches_the_model_built_from_the_configured_seed(client: TestClient) -> None:
    response = client.post("/ml-inference", json={"inputs": ROWS})
    assert response.status_code == 200
    body = response.json()
    expected = build_model(client.app.state.settings.model_seed).predict(ROWS)
    assert body["model"] == MODEL_NAME
    flat = [p for row in body["outputs"] for p in row]
    assert flat == pytest.approx([p for row in expected for p in row], rel=1e-9)
    assert body["labels"] == [row.index(max(row)) for row in expected]
    assert all(len(row) == OUTPUTS for row in body["outputs"])


def test_every_child_holds_the_same_model(client: TestClient) -> None:
    answers = {str(client.post("/ml-inference", json={"inputs": ROWS[:2]}).json()["outputs"]) for _ in range(6)}
    assert len(answers) == 1


def test_too_many_rows_is_422_naming_inputs(client: TestClient) -> None:
    response = client.post("/ml-inference", json={"inputs": [[0.0] * FEATURES] * (MAX_ROWS + 1)})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.inputs"


def test_empty_batch_is_422_naming_inputs(client: TestClient) -> None:
    assert client.post("/ml-inference", json={"inputs": []}).json()["errors"][0]["field"] == "body.inputs"


@pytest.mark.parametrize("width", [FEATURES - 1, FEATURES + 1, 0])
def test_wrong_row_width_is_422_naming_the_row(client: TestClient, width: int) -> None:
    rows = [[0.0] * FEATURES, [0.0] * width]
    response = client.post("/ml-inference", json={"inputs": rows})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.inputs.1"


def test_non_numbers_and_nan_are_422_naming_the_cell(client: TestClient) -> None:
    row = [0.0] * FEATURES
    text = client.post("/ml-inference", json={"inputs": [[*row[:3], "x", *row[4:]]]})
    assert text.json()["errors"][0]["field"] == "body.inputs.0.3"
    nan = client.post(
        "/ml-inference",
        content='{"inputs": [[NaN' + ", 0.0" * (FEATURES - 1) + "]]}",
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    assert nan.json()["errors"][0]["field"] == "body.inputs.0.0"
