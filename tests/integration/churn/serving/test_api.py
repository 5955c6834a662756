"""The REST scoring API (`python -m jobs.churn.serving`) as a real process over real HTTP, serving the run's
registered model (tests/served.py) from the real MLflow server.

- Predictions over HTTP are the in-process pyfunc's, float for float, for every customer of the snapshot;
  SHAP values on request (`params: {"explain": true}`) too.
- Every bad request gets its 4xx and a message that says why (never a 500, never an echo of the input).
- The served version is in `X-Model-Version` and `GET /model`; with no model behind the alias the API is
  up (/ping 200) and says so (503); when the alias moves the new version is swapped in within the poll
  interval plus its load time, with no failed request and no gap (measured and printed).

The API follows aliases of its own (`api_test*`): the app's tests move `production`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.served import MODEL, ROOT, feature_rows

pytestmark = pytest.mark.integration

ALIAS = "api_test"
POLL_SECONDS = 0.5


# --- helpers ----------------------------------------------------------------------------------------------------


def start_api(served, alias: str, log_path):
    from jobs.common.postgres import free_port
    from tests.servers import start_server

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **served["env"],
        "SERVING_MODEL_ALIAS": alias,
        "SERVING_ALIAS_POLL_SECONDS": str(POLL_SECONDS),
    }
    command = [sys.executable, "-m", "jobs.churn.serving", "--host", "127.0.0.1", "--port", str(port)]
    return start_server(command, f"{url}/ping", log_path, env, ROOT), url


def get(url: str, path: str):
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def post(url: str, payload=None, *, body: bytes | None = None, content_type: str = "application/json"):
    """(status, headers, parsed JSON answer) of POST /invocations."""
    data = json.dumps(payload).encode() if body is None else body
    request = urllib.request.Request(f"{url}/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def wait_for(condition, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s")


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: missing values as null, numbers as Python numbers (floats round-trip exactly)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return out


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(served):
    from mlflow.tracking import MlflowClient

    uri = served["tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    copies: list[str] = []
    yield SimpleNamespace(client=client, copies=copies)
    for alias in (ALIAS, f"{ALIAS}_none"):
        with contextlib.suppress(Exception):  # never set: nothing to clean
            client.delete_registered_model_alias(MODEL, alias)
    for version in copies:
        client.delete_model_version(MODEL, version)


@pytest.fixture(scope="module")
def api(served, registry, tmp_path_factory):
    from tests.servers import stop_server

    registry.client.set_registered_model_alias(MODEL, ALIAS, str(served["version"]))
    log_path = tmp_path_factory.mktemp("api") / "api.log"
    server, url = start_api(served, ALIAS, log_path)
    yield SimpleNamespace(url=url, log=log_path, version=served["version"])
    stop_server(server)


@pytest.fixture(scope="module")
def reference(served):
    """The registered version loaded in-process as any MLflow user would, and the snapshot's customers
    typed as its signature says (doubles as float64, longs as int64, strings as text)."""
    import mlflow
    import mlflow.pyfunc

    uri = served["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{served['version']}")
    columns = {c.name: c.type.name for c in model.metadata.get_input_schema().inputs}
    frame = feature_rows(served)[list(columns)].reset_index(drop=True)
    frame = frame.astype({c: "float64" for c, kind in columns.items() if kind in ("double", "float")})
    return SimpleNamespace(model=model, columns=columns, frame=frame)


# --- predictions -----------------------------------------------------------------------------------------------------


def test_predictions_over_http_are_the_pyfunc_in_process_for_every_customer(api, reference):
    frame = reference.frame
    assert 500 <= len(frame) <= 1000  # every customer of the snapshot, in one request
    status, headers, answer = post(api.url, {"dataframe_records": records(frame)})
    assert status == 200, answer
    served = [row["probability"] for row in answer["predictions"]]
    expected = reference.model.predict(frame)["probability"].tolist()
    assert served == expected  # exact floats
    assert headers["X-Model-Name"] == MODEL and headers["X-Model-Version"] == str(api.version)


def test_the_served_version_is_in_the_headers_and_in_get_model(api, reference):
    status, headers, body = get(api.url, "/model")
    assert status == 200 and headers["X-Model-Version"] == str(api.version)
    described = json.loads(body)
    assert {k: described[k] for k in ("name", "version", "alias")} == {
        "name": MODEL,
        "version": api.version,
        "alias": ALIAS,
    }
    assert described["params"] == {"explain": "boolean"}
    assert described["inputs"] == reference.columns  # what a row must hold, with its types
    assert get(api.url, "/ping")[0] == 200 and get(api.url, "/health")[0] == 200
    status, _, version = get(api.url, "/version")
    assert status == 200 and version.decode() == __import__("mlflow").__version__


def _scraped(url: str) -> dict[str, float]:
    """GET /metrics, parsed by prometheus-client's own parser: sample name{labels} -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    status, headers, body = get(url, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_count_and_time_each_answer_by_status_and_name_the_served_version(api, reference):
    before = _scraped(api.url)
    ok, bad = (
        'kpi_serving_request_seconds_count{"status": "200"}',
        'kpi_serving_request_seconds_count{"status": "400"}',
    )
    for _ in range(3):
        assert post(api.url, {"dataframe_records": [_one(reference)]})[0] == 200
    assert post(api.url, {"dataframe_records": [{"no_such_column": 1}]})[0] == 400
    after = _scraped(api.url)
    assert after[ok] - before.get(ok, 0) == 3 and after[bad] - before.get(bad, 0) == 1
    # every answer fell in some bucket, and one-row answers take well under the 2.5 s bucket
    fast = 'kpi_serving_request_seconds_bucket{"le": "2.5", "status": "200"}'
    assert after[fast] - before.get(fast, 0) == 3
    assert after["kpi_serving_model_version{}"] == api.version


def test_shap_values_on_request_are_the_pyfunc_in_process(api, reference):
    frame = reference.frame.head(25)
    status, _, answer = post(api.url, {"dataframe_records": records(frame), "params": {"explain": True}})
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"])
    expected = reference.model.predict(frame, params={"explain": True})
    shap_columns = [f"shap_{c}" for c in reference.columns] + ["shap_base_value"]
    assert list(served.columns) == ["probability", *shap_columns]
    assert list(expected.columns) == list(served.columns)
    assert np.array_equal(served.to_numpy(), expected.to_numpy())  # exact floats
    # without the param: the probability only
    status, _, answer = post(api.url, {"dataframe_records": records(frame.head(2))})
    assert list(answer["predictions"][0]) == ["probability"]


# --- bad requests --------------------------------------------------------------------------------------------------------


def _one(reference) -> dict:
    return records(reference.frame.head(1))[0]


def _with(reference, **values) -> dict:
    return {"dataframe_records": [{**_one(reference), **values}]}


BAD_REQUESTS = {
    # name: (request from the reference rows, status, what the message must say)
    "missing column": (
        lambda r: {"dataframe_records": [{k: v for k, v in _one(r).items() if k != "age"}]},
        400,
        "Model is missing inputs ['age']",
    ),
    "text where a number is expected": (lambda r: _with(r, age="old"), 400, "column age"),
    "null where not allowed": (lambda r: _with(r, pay_count_6m=None), 400, "row 0: pay_count_6m is required"),
    "a number outside its domain": (lambda r: _with(r, age=-5.0), 400, "row 0: age must be a whole number"),
    "JSON true for a category": (lambda r: _with(r, city=True), 400, "row 0: city must be text, got True"),
    "an object in a cell": (lambda r: _with(r, city={"a": 1}), 400, "city must be text"),
    "unknown params": (
        lambda r: {**_with(r), "params": {"explain": True, "top_k": 3}},
        400,
        "unknown params ['top_k']; this model accepts: explain (boolean)",
    ),
    "params of the wrong type": (lambda r: {**_with(r), "params": {"explain": "yes"}}, 400, "explain"),
    "params not an object": (lambda r: {**_with(r), "params": [True]}, 400, "params must be a JSON object"),
    "an unknown key": (lambda r: {**_with(r), "param": {"explain": True}}, 400, "unknown keys ['param']"),
    "an empty payload": (lambda r: {}, 400, "exactly one of dataframe_records"),
    "no rows": (lambda r: {"dataframe_records": []}, 400, "no rows to score"),
    "a list, not an object": (lambda r: [_one(r)], 400, "exactly one of dataframe_records"),
    "records not a list": (lambda r: {"dataframe_records": _one(r)}, 400, "must be a list of records"),
    "1,001 rows": (lambda r: {"dataframe_records": [_one(r)] * 1001}, 413, "1,001 rows in one request"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_each_bad_request_gets_its_4xx_and_a_message(api, reference, case):
    make, status, message = BAD_REQUESTS[case]
    got, headers, answer = post(api.url, make(reference))
    assert got == status, answer
    assert message in answer["message"], answer
    assert len(answer["message"]) < 600  # the reason, not MLflow's echo of the input frame
    assert headers["X-Model-Version"] == str(api.version)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "the body is not valid JSON"),
        (b"", "application/json", 400, "the body is not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "the body is not valid JSON"),
        (b'{"dataframe_records": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json", 400, "nested"),
        (b"age\n30", "text/plain", 415, "send application/json"),
    ],
    ids=["malformed", "empty body", "not UTF-8", "nested too deeply", "wrong content type"],
)
def test_unreadable_bodies_get_a_4xx_and_a_message(api, body, content_type, status, message):
    got, _, answer = post(api.url, body=body, content_type=content_type)
    assert got == status and message in answer["message"], answer


def test_ten_thousand_rows_are_refused_with_413_and_the_batch_job_named(api, reference):
    rows = records(reference.frame)
    payload = {"dataframe_records": (rows * (10_000 // len(rows) + 1))[:10_000]}
    status, _, answer = post(api.url, payload)
    assert status == 413 and "python -m jobs.churn.deployment" in answer["message"], answer
    # a smaller body of as many rows is refused by its count
    small = {"dataframe_records": [{"age": 30.0}] * 10_000}
    status, _, answer = post(api.url, small)
    assert status == 413 and "10,000 rows in one request: at most 1,000" in answer["message"], answer


def test_csv_is_scored_and_checked_like_json(api, reference):
    frame = reference.frame.head(3)
    status, _, answer = post(api.url, body=frame.to_csv(index=False).encode(), content_type="text/csv")
    assert status == 200, answer
    expected = reference.model.predict(frame)["probability"].to_numpy()
    assert np.allclose([p["probability"] for p in answer["predictions"]], expected, rtol=0, atol=1e-12)
    bad = frame.assign(age=-1.0).to_csv(index=False).encode()
    status, _, answer = post(api.url, body=bad, content_type="text/csv")
    assert status == 400 and "3 invalid values: row 0: age must be" in answer["message"], answer


# --- no model, and the alias moving ------------------------------------------------------------------------------------


def test_without_a_model_the_api_is_up_says_so_and_serves_the_first_version_once_it_comes(
    served, registry, reference, tmp_path
):
    from tests.servers import stop_server

    alias = f"{ALIAS}_none"  # nobody holds it yet
    server, url = start_api(served, alias, tmp_path / "api.log")
    try:
        status, _, body = get(url, "/ping")
        assert status == 200 and json.loads(body)["model"] is None
        status, _, body = get(url, "/model")
        assert status == 503 and f"holds the alias '{alias}' yet" in json.loads(body)["message"]
        status, _, answer = post(url, {"dataframe_records": records(reference.frame.head(1))})
        assert status == 503 and "nothing to score with" in answer["message"]

        registry.client.set_registered_model_alias(MODEL, alias, str(served["version"]))
        wait_for(lambda: get(url, "/model")[0] == 200, timeout=60)
        status, headers, answer = post(url, {"dataframe_records": records(reference.frame.head(1))})
        assert status == 200 and headers["X-Model-Version"] == str(served["version"])
    finally:
        stop_server(server)
    assert f"serving {MODEL} v{served['version']} (@{alias})" in (tmp_path / "api.log").read_text()


def test_when_the_alias_moves_the_new_version_is_swapped_in_without_a_gap(api, registry, reference):
    """A client scores one row after another while the alias moves to another version: every request is
    answered (200), by the old version and then only by the new one, and the switch comes within the poll
    interval plus the new version's load time. The longest interval between two answers is the gap."""
    old = api.version
    source = registry.client.get_model_version(MODEL, str(old))
    new = registry.client.create_model_version(
        MODEL,
        source.source,
        source.run_id,
        model_id=source.model_id or source.source.removeprefix("models:/"),
    ).version  # the same files under another version number
    registry.copies.append(new)
    body = {"dataframe_records": records(reference.frame.head(1))}
    answers: list[tuple[float, int, str]] = []  # (answered at, status, version)
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                status, headers, _ = post(api.url, body)
                answers.append((time.monotonic(), status, headers["X-Model-Version"]))
            except OSError as exc:  # a refused connection: what a restart would cause
                answers.append((time.monotonic(), -1, repr(exc)))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_for(lambda: len(answers) >= 20, timeout=30)
        moved_at = time.monotonic()
        registry.client.set_registered_model_alias(MODEL, ALIAS, str(new))
        switched_at = wait_for(
            lambda: next((t for t, _, v in answers if v == str(new)), None), timeout=60, step=0.01
        )
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    _, _, described = get(api.url, "/model")
    load_seconds = json.loads(described)["load_seconds"]
    assert {status for _, status, _ in answers} == {200}
    versions = [v for _, _, v in answers]
    switch = versions.index(str(new))
    assert set(versions[:switch]) == {str(old)} and set(versions[switch:]) == {str(new)}  # one switch
    assert switched_at - moved_at <= POLL_SECONDS + load_seconds + 1.0
    around = [t for t, _, _ in answers if moved_at <= t <= switched_at + 0.5]
    gap = max(b - a for a, b in itertools.pairwise(around))
    print(
        f"\nalias move: v{old} -> v{new} answered after {switched_at - moved_at:.2f} s (poll {POLL_SECONDS} s, "
        f"load {load_seconds:.2f} s); {len(answers)} requests, none failed; longest interval between two "
        f"answers during the move {gap * 1000:.0f} ms"
    )
    assert gap < 1.0  # no restart: a cold start of the server takes seconds
    assert f"moved from v{old} to v{new}" in api.log.read_text()
