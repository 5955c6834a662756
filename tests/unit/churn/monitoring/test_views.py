"""The registry views tell an artifact a run never logged (shown as absent) from a store that fails
(raised, never shown as "no data"). A real MLflow tracking store in a folder of the test's own."""

from __future__ import annotations

import json

import pytest

from jobs.churn.monitoring.io import drift_report, logged, version_details


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    bare = client.create_run(experiment).info.run_id
    full = client.create_run(experiment).info.run_id
    (tmp_path / "snapshot.json").write_text(json.dumps({"version": 3}))
    client.log_artifact(full, str(tmp_path / "snapshot.json"), "dataset")
    (tmp_path / "summary.json").write_text(json.dumps({"severity": "none"}))
    client.log_artifact(bare, str(tmp_path / "summary.json"), "drift")
    client.log_artifact(full, str(tmp_path / "summary.json"), "drift")
    (tmp_path / "report.html").write_text("<html></html>")
    client.log_artifact(full, str(tmp_path / "report.html"), "drift")
    client.create_registered_model("m")
    for run in (bare, full):
        client.create_model_version("m", f"runs:/{run}/model", run)
    return client, bare, full


def test_an_artifact_a_run_never_logged_is_absent(store):
    client, bare, full = store
    assert logged(client, full, "dataset/snapshot.json") and not logged(client, bare, "dataset/snapshot.json")
    assert not logged(client, full, "plots")
    assert version_details(client, "m", 1).dataset == {}
    assert version_details(client, "m", 2).dataset == {"version": 3}
    assert drift_report(client, bare) == ({"severity": "none"}, None)
    assert drift_report(client, full) == ({"severity": "none"}, b"<html></html>")


def test_a_failing_store_is_an_error_not_an_absent_artifact(store):
    client, _, full = store

    class Down(type(client)):
        def download_artifacts(self, *args, **kwargs):
            raise OSError("the artifact store is down")

    down = Down(tracking_uri=client._tracking_client.tracking_uri, registry_uri=client._registry_uri)
    with pytest.raises(OSError, match="down"):
        version_details(down, "m", 2)
    with pytest.raises(OSError, match="down"):
        drift_report(down, full)
