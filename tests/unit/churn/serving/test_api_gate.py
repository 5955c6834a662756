"""The REST API's gate (what MLflow's scoring server would not refuse, or not clearly) and its tidying of
MLflow's error messages, without a server; tests/integration/churn/serving answers each case over HTTP."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from jobs.churn.serving.api import Limits, Refusal, check_request, tidy_error

LIMITS = Limits(max_rows=3, max_bytes=10_000)
PARAMS = {"explain": "boolean"}
ROW = {"age": 30.0, "city": "Rosario"}


def gate(payload=None, body: bytes | None = None, content_type: str = "application/json") -> Refusal | None:
    return check_request(json.dumps(payload).encode() if body is None else body, content_type, LIMITS, PARAMS)


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_records": [ROW] * 3},
        {"dataframe_records": [ROW], "params": {"explain": True}},
        {"dataframe_records": [ROW], "params": None},
        {"dataframe_split": {"columns": ["age"], "data": [[30.0], [31.0]]}},
        {"inputs": {"age": [30.0, 31.0], "city": ["a", "b"]}},
        {"dataframe_records": "not a list"},  # a shape MLflow's server explains itself
    ],
)
def test_requests_within_the_limits_go_to_mlflow(payload):
    assert gate(payload) is None


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"dataframe_records": [ROW] * 4}, 413, "4 rows in one request: at most 3"),
        ({"dataframe_split": {"data": [[1]] * 4}}, 413, "4 rows in one request"),
        ({"dataframe_records": []}, 400, "no rows to score: dataframe_records is empty"),
        ({}, 400, "exactly one of dataframe_records, dataframe_split, instances, inputs"),
        ({"dataframe_records": [ROW], "inputs": [ROW]}, 400, "exactly one of"),
        ([ROW], 400, "exactly one of"),
        ({"dataframe_records": [ROW], "extra": 1}, 400, "unknown keys ['extra']"),
        (
            {"dataframe_records": [ROW], "params": {"k": 1}},
            400,
            "unknown params ['k']; this model accepts: explain (boolean)",
        ),
        ({"dataframe_records": [ROW], "params": "explain"}, 400, "params must be a JSON object"),
    ],
)
def test_refused_requests_say_why(payload, status, message):
    refusal = gate(payload)
    assert refusal is not None and refusal.status == status and message in refusal.message
    assert json.loads(refusal.body()) == {"error_code": refusal.error_code, "message": refusal.message}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_unreadable_json_is_refused(body, message):
    refusal = gate(body=body)
    assert refusal.status == 400 and message in refusal.message


def test_csv_and_parquet_rows_are_counted_and_other_types_refused():
    frame = pd.DataFrame([ROW] * 4)
    assert gate(body=frame.head(3).to_csv(index=False).encode(), content_type="text/csv") is None
    assert gate(body=frame.to_csv(index=False).encode(), content_type="text/csv; charset=utf-8").status == 413
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    assert gate(body=buffer.getvalue(), content_type="application/vnd.apache.parquet").status == 413
    assert gate(body=b"not parquet", content_type="application/vnd.apache.parquet") is None  # MLflow says why
    assert gate(body=b"age=1", content_type="application/x-www-form-urlencoded").status == 415
    assert gate(body=b"{}", content_type="").status == 415


def test_mlflow_error_messages_keep_only_the_reason():
    frame_text = "   age\n0  -5.0\n\n[1 rows x 1 columns]"
    wrapped = {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Failed to predict data '{frame_text}'. \nError: 1 invalid value: row 0: age must be ...",
    }
    assert (
        json.loads(tidy_error(json.dumps(wrapped).encode()))["message"]
        == "1 invalid value: row 0: age must be ..."
    )
    schema = {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Failed to predict data '{frame_text}'. \nError: Failed to enforce schema of data '{frame_text}' "
        "with schema '['age': double (required)]'. Error: Model is missing inputs ['age'].",
    }
    assert (
        json.loads(tidy_error(json.dumps(schema).encode()))["message"] == "Model is missing inputs ['age']."
    )
    plain = json.dumps({"error_code": "BAD_REQUEST", "message": "Invalid input. ..."}).encode()
    assert tidy_error(plain) == plain and tidy_error(b"not json") == b"not json"
