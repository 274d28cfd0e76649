"""S3 helpers against the moto server: transfers, conditional writes, readable errors."""

from __future__ import annotations

import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
from botocore.config import Config

from tasks.errors import InvalidSettingsError, PermanentError
from tasks.storage import (
    TRANSFER_THREADS,
    PermanentStorageError,
    S3Uri,
    StorageError,
    WriteConflictError,
    client_config,
    delete_keys,
    download_file,
    download_tree,
    ensure_bucket,
    get_bytes,
    get_json,
    head_etag,
    iter_objects,
    list_folders,
    make_client,
    parallel_map,
    put_bytes,
    put_json,
    put_json_if,
    upload_file,
    upload_tree,
)


def test_uri_round_trip_and_join():
    uri = S3Uri.parse("s3://bucket/runs/a")
    assert (uri.bucket, uri.key) == ("bucket", "runs/a")
    assert str(uri.join("b", "c.json")) == "s3://bucket/runs/a/b/c.json"
    with pytest.raises(InvalidSettingsError, match="is not an s3:// URI"):
        S3Uri.parse("/local/path")


def test_json_round_trip_and_folder_listing(s3, bucket):
    put_json(s3, S3Uri(bucket, "models/m/1/x.json"), {"a": 1})
    put_json(s3, S3Uri(bucket, "models/m/2/x.json"), {"a": 2})
    assert get_json(s3, S3Uri(bucket, "models/m/2/x.json")) == {"a": 2}
    assert sorted(list_folders(s3, S3Uri(bucket, "models/m"))) == ["1", "2"]


def test_tree_upload_and_download_keep_relative_paths(s3, bucket, tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "a.txt").write_text("a")
    (tmp_path / "src" / "b.bin").write_bytes(b"b")
    upload_tree(s3, tmp_path / "src", S3Uri(bucket, "tree"))
    paths = download_tree(s3, S3Uri(bucket, "tree"), tmp_path / "dst", skip_suffixes=(".bin",))
    assert [p.relative_to(tmp_path / "dst").as_posix() for p in paths] == ["sub/a.txt"]
    assert (tmp_path / "dst" / "sub" / "a.txt").read_text() == "a"


def test_conditional_write_refuses_to_overwrite_a_changed_object(s3, bucket):
    uri = S3Uri(bucket, "pointer.json")
    put_json_if(s3, uri, {"version": 1}, expected_etag=None)
    with pytest.raises(WriteConflictError, match="changed by another writer"):
        put_json_if(s3, uri, {"version": 2}, expected_etag=None)
    stale = head_etag(s3, uri)
    put_json_if(s3, uri, {"version": 2}, expected_etag=stale)
    with pytest.raises(WriteConflictError):
        put_json_if(s3, uri, {"version": 3}, expected_etag=stale)
    assert get_json(s3, uri) == {"version": 2}


def test_missing_bucket_is_explained(s3):
    with pytest.raises(StorageError, match="s3://no-such-bucket-here") as raised:
        put_bytes(s3, S3Uri("no-such-bucket-here", "k"), b"x")
    assert "bucket does not exist" in str(raised.value)
    assert raised.value.permanent


def test_unreachable_endpoint_is_transient():
    one_try = client_config().merge(Config(retries={"total_max_attempts": 1}))
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", config=one_try)
    assert (
        client.meta.config.retries["total_max_attempts"] == 1
    )  # settings only apply when the client is made
    with pytest.raises(StorageError, match="unreachable") as raised:
        ensure_bucket(client, "any-bucket")
    assert not raised.value.permanent


def test_escaping_keys_are_refused_when_downloading(s3, bucket, tmp_path):
    put_bytes(s3, S3Uri(bucket, "tree/../../escape.txt"), b"x")
    with pytest.raises(StorageError, match="escapes"):
        download_tree(s3, S3Uri(bucket, "tree"), tmp_path / "dst")


def test_retries_of_slowdown_answers_are_logged_and_succeed(s3_endpoint, bucket, caplog):
    from urllib.parse import urlsplit

    from fault_proxy import FaultProxy, Faults

    with FaultProxy(urlsplit(s3_endpoint).port, seed=3) as proxy:
        client = make_client(proxy.endpoint_url)
        proxy.set_faults(Faults(slowdown_fraction=0.5, methods=frozenset({"PUT"})))
        for index in range(6):
            put_bytes(client, S3Uri(bucket, f"slow/{index}"), b"x")
    assert proxy.counts["slowdown"] >= 2, proxy.counts
    retries = [r.getMessage() for r in caplog.records if ": retry " in r.getMessage()]
    assert len(retries) == proxy.counts["slowdown"]
    assert retries[0].startswith(f"S3 PutObject /{bucket}/slow/") and retries[0].endswith(" of 5")
    assert len(list(iter_objects(make_client(s3_endpoint), S3Uri(bucket, "slow/")))) == 6


def test_parallel_transfers_of_large_objects_fit_the_connection_pool(s3, bucket, tmp_path, caplog):
    """Every transfer thread fetching a large object in parts of its own, as the trainer fetches
    packs: each connection fits the client's pool, so none is discarded and reopened."""
    body = os.urandom(17 * 2**20)  # three parts of boto3's 8 MiB
    keys = [f"packs/{number}.tfrecord" for number in range(TRANSFER_THREADS)]
    parallel_map(lambda key: put_bytes(s3, S3Uri(bucket, key), body), keys)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    paths = parallel_map(lambda key: download_file(s3, S3Uri(bucket, key), tmp_path / key), keys)
    assert [path.stat().st_size for path in paths] == [len(body)] * len(keys)
    assert not [record for record in caplog.records if "pool is full" in record.getMessage()]


def test_errors_that_are_not_s3_answers_keep_their_type(s3, bucket, tmp_path):
    """A local bug or a corrupt document is not relabelled as a (retryable) S3 problem."""
    with pytest.raises(FileNotFoundError):
        upload_file(s3, tmp_path / "not-written.bin", S3Uri(bucket, "x.bin"))
    put_bytes(s3, S3Uri(bucket, "broken.json"), b"{not json")
    with pytest.raises(json.JSONDecodeError) as raised:
        get_json(s3, S3Uri(bucket, "broken.json"))
    assert not isinstance(raised.value, PermanentError | StorageError)


def test_refusals_are_permanent_and_outages_are_not(s3):
    with pytest.raises(PermanentStorageError):
        put_bytes(s3, S3Uri("no-such-bucket-here", "k"), b"x")
    one_try = client_config().merge(Config(retries={"total_max_attempts": 1}))
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", config=one_try)
    with pytest.raises(StorageError) as raised:
        get_bytes(client, S3Uri("any-bucket", "k"))
    assert not isinstance(raised.value, PermanentError)


class RefusingDeletes(BaseHTTPRequestHandler):
    """An S3 endpoint whose DeleteObjects answers 200 and refuses one key, as S3 does for a key
    the credentials may not delete."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult '
            b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Deleted><Key>runs/a</Key></Deleted>'
            b"<Error><Key>runs/b</Key><Code>AccessDenied</Code><Message>Access Denied</Message>"
            b"</Error></DeleteResult>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_keys_s3_refuses_to_delete_raise(s3, bucket):
    put_bytes(s3, S3Uri(bucket, "runs/a"), b"a")
    assert delete_keys(s3, bucket, ["runs/a"]) == 1
    server = HTTPServer(("127.0.0.1", 0), RefusingDeletes)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = make_client(f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(StorageError, match=r"s3://b-1/runs/b: not deleted \(AccessDenied"):
            delete_keys(client, "b-1", ["runs/a", "runs/b"])
    finally:
        server.shutdown()
