"""The object store against an S3 API (moto's server standing in for MinIO): path-style, s3v4."""

from __future__ import annotations

import pytest

from jobs.common.config import ObjectStoreSettings
from jobs.common.objectstore import ObjectNotFound, S3ObjectStore, open_store, put_tree

pytestmark = pytest.mark.integration


def test_s3_store_writes_lists_and_reads(s3_endpoint, tmp_path):
    settings = ObjectStoreSettings(
        s3_endpoint_url=s3_endpoint, s3_access_key_id="k", s3_secret_access_key="s"
    )
    store = open_store(settings)
    assert isinstance(store, S3ObjectStore)
    uri = store.put_bytes(
        "ge-artifacts", "crypto_events/2026-11-20/run/validation_result.json", b'{"success": true}'
    )
    assert uri == "s3://ge-artifacts/crypto_events/2026-11-20/run/validation_result.json"
    (tmp_path / "static").mkdir()
    (tmp_path / "index.html").write_text("<html>docs</html>")
    (tmp_path / "static" / "style.css").write_text("body {}")
    keys = put_tree(store, "ge-artifacts", "crypto_events/2026-11-20/run/data_docs", tmp_path)
    assert store.list_keys("ge-artifacts", "crypto_events/2026-11-20/") == sorted(
        ["crypto_events/2026-11-20/run/validation_result.json", *keys]
    )
    assert store.get_bytes("ge-artifacts", keys[0]) == b"<html>docs</html>"
    with pytest.raises(ObjectNotFound, match=r"s3://ge-artifacts/crypto_events/none\.json"):
        store.get_bytes("ge-artifacts", "crypto_events/none.json")  # a missing key, not a bare client error


def test_empty_endpoint_means_the_local_folder(tmp_path):
    store = open_store(ObjectStoreSettings(s3_endpoint_url="", object_store_local_root=tmp_path))
    uri = store.put_bytes("ge-artifacts", "a/b.json", b"{}")
    assert uri == (tmp_path / "ge-artifacts" / "a" / "b.json").as_uri()
    with pytest.raises(ObjectNotFound):
        store.get_bytes("ge-artifacts", "a/none.json")
    with pytest.raises(ValueError, match="escapes its bucket"):
        store.put_bytes("ge-artifacts", "../../etc/x", b"")
