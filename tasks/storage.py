"""Everything that touches S3: URIs, clients, listing, parallel transfers, JSON objects.

S3 makes each PUT atomic: a reader sees the whole old object or the whole new one. The
pipeline relies on that and on writing the object consumers watch (markers, pointers) last.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from tasks.errors import InvalidSettingsError, PermanentError

log = logging.getLogger(__name__)

S3Client = Any  # boto3's client class is generated at run time; there is no importable type.

# Files moved at once by parallel_map, and the threads each managed transfer (upload_file,
# download_file) uses for the parts of a large object: up to their product in connections.
TRANSFER_THREADS = 16
PART_THREADS = 10
MANAGED_TRANSFER = TransferConfig(max_concurrency=PART_THREADS)

Item = TypeVar("Item")
Result = TypeVar("Result")


# The errors botocore raises for a request; `explain` turns them into a StorageError.
S3_ERRORS = (BotoCoreError, ClientError)


class StorageError(RuntimeError):
    """An S3 problem explained in one line: which object or bucket, what went wrong, what to do.
    This base kind is transient (an unreachable endpoint, a throttled or failed request): the
    task's retries may clear it."""

    permanent = False


class PermanentStorageError(StorageError, PermanentError):
    """An S3 problem that a retry cannot clear (missing bucket, bad credentials, no data)."""

    permanent = True


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise InvalidSettingsError(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[len("s3://") :].partition("/")
        return cls(bucket, key)

    def join(self, *parts: str) -> S3Uri:
        key = "/".join([self.key.rstrip("/"), *parts]) if self.key else "/".join(parts)
        return S3Uri(self.bucket, key)

    def folder(self) -> S3Uri:
        """The prefix of everything under this key as a folder (with the trailing '/')."""
        return S3Uri(self.bucket, self.key.rstrip("/") + "/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# Tries per request, the first included. With standard retries' backoff (random up to 2^n s,
# at most 20 s) six tries ride out a few seconds of errors; longer outages are the task's
# retries' business (Airflow waits 30 s and more between them).
S3_TOTAL_TRIES = 6


def client_config() -> Config:
    """Every S3 client's settings. Pool: every connection that TRANSFER_THREADS files of
    PART_THREADS parts each can hold open (a smaller pool makes urllib3 discard and reopen
    connections, with a warning for each). Retries: "standard" mode retries throttling
    (503 SlowDown), 5xx answers and dropped or refused connections with jittered exponential
    backoff. "adaptive" mode would add a client-side rate limiter that, after one SlowDown,
    slows every thread sharing the client; S3 throttles per prefix, and our writes spread over
    many. They only apply when the client is made. docs/reliability.md has the drills."""
    return Config(
        retries={"total_max_attempts": S3_TOTAL_TRIES, "mode": "standard"},
        max_pool_connections=TRANSFER_THREADS * PART_THREADS,
    )


def make_client(endpoint_url: str | None = None, region_name: str | None = None) -> S3Client:
    """A thread-safe boto3 S3 client; credentials and AWS_ENDPOINT_URL come from the
    environment unless given, as everywhere in boto3."""
    client = boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region_name or "us-east-1", config=client_config()
    )
    return log_retries(client)


RETRY_HEADER = re.compile(r"attempt=(\d+); max=(\d+)")


def _log_retry(request: Any, event_name: str, **_: Any) -> None:
    header = request.headers.get("amz-sdk-request", b"")
    match = RETRY_HEADER.search(header.decode() if isinstance(header, bytes) else header)
    if match and int(match.group(1)) > 1:
        path = urlsplit(request.url).path
        attempt, most = int(match.group(1)), int(match.group(2))
        log.warning("S3 %s %s: retry %d of %d", event_name.rsplit(".", 1)[-1], path, attempt - 1, most - 1)


def log_retries(client: S3Client) -> S3Client:
    """Makes botocore's retries visible: one warning per retried request (they are silent
    below DEBUG otherwise), so a flaky endpoint shows in the task log before it fails a task."""
    client.meta.events.register("before-send.s3", _log_retry, unique_id="nightly-retrain-log-retries")
    return client


EXPIRED = (
    "the temporary credentials expired; give the trainer credentials that outlive its attempt "
    "(RETRAIN_TRAINER_ROLE_ARN, docs/security.md) or the connection long-lived keys"
)


def explain(error: Exception, what: str) -> StorageError:
    """Turns one of botocore's errors (S3_ERRORS) into one readable line naming the object and
    the likely fix; known refusals are permanent, the rest (5xx, throttling, dropped
    connections) transient. Callers catch S3_ERRORS only, so other exceptions keep their type."""
    if isinstance(error, NoCredentialsError):
        return PermanentStorageError(
            f"{what}: no AWS credentials found; set the connection's login/password (or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(error, EndpointConnectionError):
        return StorageError(f"{what}: S3 endpoint unreachable ({error}); check endpoint_url")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        hints = {
            "NoSuchBucket": "the bucket does not exist; create it or fix its name (the 'bucket' Param, "
            "or --bucket)",
            "NoSuchKey": "the object does not exist",
            "404": "the object does not exist",
            "InvalidAccessKeyId": "the access key is not known to S3; check the connection",
            "SignatureDoesNotMatch": "the secret key is wrong; check the connection",
            "AccessDenied": "access denied; check the credentials' permissions",
            "ExpiredToken": EXPIRED,
            "TokenRefreshRequired": EXPIRED,
            "InvalidToken": "the session token is not valid; check the credentials",
            "403": "access denied; check the credentials",
        }
        if code in hints:
            return PermanentStorageError(f"{what}: {hints[code]}")
        return StorageError(f"{what}: {code or error}")
    return StorageError(f"{what}: {error}")


def ensure_bucket(client: S3Client, bucket: str) -> None:
    """Checks the bucket is there and reachable with these credentials."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchBucket"):
            raise PermanentStorageError(
                f"s3://{bucket}: the bucket does not exist; create it or fix its name (the 'bucket' "
                "Param, or --bucket)"
            ) from error
        raise explain(error, f"s3://{bucket}") from error
    except S3_ERRORS as error:
        raise explain(error, f"s3://{bucket}") from error


def create_bucket(client: S3Client, bucket: str) -> None:
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise explain(error, f"s3://{bucket}") from error


def list_folders(client: S3Client, uri: S3Uri) -> list[str]:
    """The names of the 'folders' (common prefixes) right under a prefix."""
    prefix = uri.key.rstrip("/") + "/"
    paginator = client.get_paginator("list_objects_v2")
    names: list[str] = []
    try:
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=prefix, Delimiter="/"):
            names += [item["Prefix"][len(prefix) :].rstrip("/") for item in page.get("CommonPrefixes", [])]
    except S3_ERRORS as error:
        raise explain(error, f"listing {uri}") from error
    return names


# An object as boto3 describes it (an entry of a ListObjectsV2 page: Key, Size, ETag,
# LastModified, ...; or HeadObject's or GetObject's answer): boto3's own dict, as it came.
ObjectSummary = dict[str, Any]


def iter_objects(client: S3Client, uri: S3Uri) -> Iterator[ObjectSummary]:
    """Yields S3's object summaries (Key, Size, ETag, LastModified) under a prefix."""
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key):
            yield from page.get("Contents", [])
    except S3_ERRORS as error:
        raise explain(error, f"listing {uri}") from error


def get_bytes(client: S3Client, uri: S3Uri) -> bytes:
    try:
        return client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
    except S3_ERRORS as error:
        raise explain(error, str(uri)) from error


def iter_chunks(client: S3Client, uri: S3Uri, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The object's bytes in chunks, as they arrive: for reading an object without holding it."""
    try:
        yield from client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].iter_chunks(chunk_bytes)
    except S3_ERRORS as error:
        raise explain(error, str(uri)) from error


def get_object_if_exists(client: S3Client, uri: S3Uri) -> ObjectSummary | None:
    """GetObject's answer (its `Body` still to read), or None when there is no such object."""
    try:
        return dict(client.get_object(Bucket=uri.bucket, Key=uri.key))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise explain(error, str(uri)) from error
    except S3_ERRORS as error:
        raise explain(error, str(uri)) from error


@dataclass(frozen=True)
class OpenedObject:
    """An object whose body is still to read: stream it with `chunks` (which closes it when
    done), or `close` it unread."""

    size: int
    body: Any  # botocore's StreamingBody

    def chunks(self, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        try:
            yield from self.body.iter_chunks(chunk_bytes)
        finally:
            self.body.close()

    def close(self) -> None:
        self.body.close()


def open_object(client: S3Client, uri: S3Uri) -> OpenedObject | None:
    """The object, opened but not read (for streaming it on without holding it), or None when
    there is no such object."""
    response = get_object_if_exists(client, uri)
    return None if response is None else OpenedObject(int(response["ContentLength"]), response["Body"])


def get_bytes_if_exists(client: S3Client, uri: S3Uri) -> bytes | None:
    """The object's bytes, or None when there is no such object (one request, not two)."""
    response = get_object_if_exists(client, uri)
    try:
        return None if response is None else response["Body"].read()
    except S3_ERRORS as error:
        raise explain(error, str(uri)) from error


def put_bytes(client: S3Client, uri: S3Uri, body: bytes, content_type: str = "") -> None:
    extra = {"ContentType": content_type} if content_type else {}
    try:
        client.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, **extra)
    except S3_ERRORS as error:
        raise explain(error, f"writing {uri}") from error


def put_csv(client: S3Client, uri: S3Uri, frame: Any) -> None:
    """A pandas DataFrame as CSV without its index."""
    put_bytes(client, uri, frame.to_csv(index=False).encode(), "text/csv")


def get_json(client: S3Client, uri: S3Uri) -> Any:
    return json.loads(get_bytes(client, uri))


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True, default=str).encode()


def put_json(client: S3Client, uri: S3Uri, document: Any) -> None:
    put_bytes(client, uri, json_bytes(document), "application/json")


class WriteConflictError(PermanentStorageError):
    """A conditional write lost: somebody else wrote the object since we read it."""


def head_object(client: S3Client, uri: S3Uri) -> ObjectSummary | None:
    """The object's metadata (ETag, LastModified, ...), or None when it does not exist."""
    try:
        return dict(client.head_object(Bucket=uri.bucket, Key=uri.key))
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise explain(error, str(uri)) from error


def head_etag(client: S3Client, uri: S3Uri) -> str | None:
    """The object's ETag, or None when it does not exist."""
    metadata = head_object(client, uri)
    return None if metadata is None else str(metadata["ETag"])


def put_json_if(client: S3Client, uri: S3Uri, document: Any, expected_etag: str | None) -> None:
    """Writes only if the object still has expected_etag (or, for None, does not exist yet)."""
    body = json_bytes(document)
    condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
    try:
        client.put_object(
            Bucket=uri.bucket, Key=uri.key, Body=body, ContentType="application/json", **condition
        )
    except ClientError as error:
        if error.response["Error"]["Code"] in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise WriteConflictError(
                f"{uri}: changed by another writer since it was read; nothing was overwritten"
            ) from error
        raise explain(error, f"writing {uri}") from error


def get_json_and_etag(client: S3Client, uri: S3Uri) -> tuple[Any, str] | None:
    """(the JSON document, its ETag) read in one request, or None when there is no such object:
    for a later write conditional on the document being still the one read."""
    response = get_object_if_exists(client, uri)
    if response is None:
        return None
    return json.loads(response["Body"].read()), str(response["ETag"])


def exists(client: S3Client, uri: S3Uri) -> bool:
    return head_etag(client, uri) is not None


def upload_file(client: S3Client, path: Path, uri: S3Uri) -> None:
    try:
        client.upload_file(str(path), uri.bucket, uri.key, Config=MANAGED_TRANSFER)
    except S3_ERRORS as error:
        raise explain(error, f"uploading {path} to {uri}") from error
    except S3UploadFailedError as error:
        # boto3's managed upload wraps S3's answer; the answer says what to do.
        answer = error.__context__ if isinstance(error.__context__, S3_ERRORS) else error
        raise explain(answer, f"uploading {path} to {uri}") from error


def download_file(client: S3Client, uri: S3Uri, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        client.download_file(uri.bucket, uri.key, str(path), Config=MANAGED_TRANSFER)
    except S3_ERRORS as error:
        raise explain(error, f"downloading {uri}") from error
    return path


def copy_object(client: S3Client, source: S3Uri, target: S3Uri) -> None:
    """Server-side copy: no bytes pass through the worker. boto3's managed copy, which copies
    objects above 8 MiB in parts, in parallel (one CopyObject stops at 5 GB)."""
    try:
        client.copy({"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key)
    except S3_ERRORS as error:
        raise explain(error, f"copying {source} to {target}") from error


def parallel_map(work: Callable[[Item], Result], items: list[Item]) -> list[Result]:
    """Runs I/O-bound work over items on a thread pool, keeping the input order."""
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        return list(pool.map(work, items))


def upload_tree(client: S3Client, folder: Path, uri: S3Uri) -> list[S3Uri]:
    """Uploads every file under folder to the same relative keys under uri."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    targets = [uri.join(path.relative_to(folder).as_posix()) for path in files]
    parallel_map(lambda pair: upload_file(client, *pair), list(zip(files, targets, strict=True)))
    return targets


def download_tree(
    client: S3Client, uri: S3Uri, folder: Path, skip_suffixes: tuple[str, ...] = ()
) -> list[Path]:
    """Downloads every object under the prefix uri into folder, keeping relative keys."""
    prefix = uri.key.rstrip("/") + "/"
    keys = [
        item["Key"]
        for item in iter_objects(client, S3Uri(uri.bucket, prefix))
        if not item["Key"].endswith(skip_suffixes)
    ]
    paths = [folder / key[len(prefix) :] for key in keys]
    for path in paths:
        if folder.resolve() not in path.resolve().parents:
            raise PermanentStorageError(f"s3://{uri.bucket}/{path}: key escapes {folder}; refusing")
    parallel_map(
        lambda pair: download_file(client, S3Uri(uri.bucket, pair[0]), pair[1]),
        list(zip(keys, paths, strict=True)),
    )
    return paths


def delete_keys(client: S3Client, bucket: str, keys: list[str]) -> int:
    """Deletes objects in batches of S3's maximum of 1,000 per request. S3 answers a batch with
    HTTP 200 and lists the keys it could not delete; any such key raises, naming the first."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        try:
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        except S3_ERRORS as error:
            raise explain(error, f"deleting objects in s3://{bucket}") from error
        refused = answer.get("Errors", [])
        if refused:
            first = refused[0]
            raise StorageError(
                f"s3://{bucket}/{first.get('Key')}: not deleted ({first.get('Code')}: "
                f"{first.get('Message', '')}); {len(refused)} of {len(batch)} keys in the batch refused"
            )
    return len(keys)


def delete_prefix(client: S3Client, uri: S3Uri) -> int:
    return delete_keys(client, uri.bucket, [item["Key"] for item in iter_objects(client, uri)])
