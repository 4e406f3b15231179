"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, Cloudflare R2, ...) via boto3.

Objects are ``<prefix><key>``. Reads are ranged GETs pinned to the object's ETag, so a reader
never mixes bytes of two versions (e.g. while a key rotation rewrites the object). boto3 retries
throttling and 5xx answers itself ("standard" mode); what still fails becomes
:class:`StorageUnavailable`, whose message names the setting to check and never a key's content.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from clinscribe.config import StorageSettings
from clinscribe.errors import ClinscribeError, ConfigurationError
from clinscribe.streams import SeekableReader

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_MISSING = {"404", "NoSuchKey", "NotFound"}
_READ_BUFFER = 256 * 1024


class StorageUnavailable(ClinscribeError):
    status_code = 503
    code = "storage_unavailable"
    retryable = True


def _unavailable(action: str, error: Exception) -> StorageUnavailable:
    if isinstance(error, Boto3Error) and isinstance(error.__context__, ClientError):
        error = error.__context__  # upload_file wraps the answer's error
    detail = type(error).__name__
    if isinstance(error, ClientError):
        detail = str(error.response.get("Error", {}).get("Code", detail))
    return StorageUnavailable(
        f"the audio storage could not {action} ({detail}); check CLINSCRIBE_STORAGE__S3_* "
        "settings and that the bucket is reachable (`clinscribe doctor`)"
    )


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> S3BlobStore:
        if not settings.s3_bucket:
            raise ConfigurationError(
                "CLINSCRIBE_STORAGE__BACKEND is s3 but no bucket is set: set "
                "CLINSCRIBE_STORAGE__S3_BUCKET (the bucket must exist)"
            )
        if (settings.s3_access_key_id is None) != (settings.s3_secret_access_key is None):
            raise ConfigurationError(
                "set both CLINSCRIBE_STORAGE__S3_ACCESS_KEY_ID and "
                "CLINSCRIBE_STORAGE__S3_SECRET_ACCESS_KEY, or neither (boto3's usual sources)"
            )
        secret = settings.s3_secret_access_key
        config = Config(
            connect_timeout=settings.s3_timeout_s,
            read_timeout=settings.s3_timeout_s,
            retries={"max_attempts": 5, "mode": "standard"},
            # Path-style requests work with every S3-compatible server (MinIO needs them).
            s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region or None,
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def _name(self, key: str) -> str:
        if not key or ".." in key.split("/"):
            raise ValueError("blob keys are relative paths without '..' parts")
        return self.prefix + key

    def put(self, key: str, source: Path) -> None:
        try:
            # One PUT (or a multipart upload for large files): the object appears whole or not.
            self._client.upload_file(str(source), self.bucket, self._name(key))
        except (BotoCoreError, ClientError, Boto3Error) as error:
            raise _unavailable("store audio", error) from None
        finally:
            source.unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        name = self._name(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(f"no stored object {key}") from None
            raise _unavailable("read audio", error) from None
        except BotoCoreError as error:
            raise _unavailable("read audio", error) from None
        raw = _RangeReader(self._client, self.bucket, name, int(head["ContentLength"]),
                           str(head["ETag"]))  # fmt: skip
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise _unavailable("look up audio", error) from None
        except BotoCoreError as error:
            raise _unavailable("look up audio", error) from None
        return True

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                found += [str(item["Key"])[len(self.prefix) :] for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as error:
            raise _unavailable("list audio", error) from None
        return sorted(found)

    def delete_prefix(self, prefix: str) -> None:
        keys = self.keys(prefix)
        try:
            for start in range(0, len(keys), 1000):  # the most one request may delete
                batch = [{"Key": self.prefix + key} for key in keys[start : start + 1000]]
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if answer.get("Errors"):
                    code = str(answer["Errors"][0].get("Code", "unknown"))
                    raise StorageUnavailable(
                        f"the audio storage refused to delete objects ({code}); check that the "
                        "credentials in CLINSCRIBE_STORAGE__S3_* may delete in the bucket"
                    )
        except (BotoCoreError, ClientError) as error:
            raise _unavailable("delete audio", error) from None

    def describe(self) -> str:
        return f"bucket {self.bucket}" + (f" (prefix {self.prefix})" if self.prefix else "")


class _RangeReader(SeekableReader):
    """Random access to one object: every read is a Range GET of exactly the bytes asked."""

    def __init__(self, client: Any, bucket: str, name: str, size: int, etag: str) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._name = name
        self._size = size
        self._etag = etag
        self._position = 0

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        count = min(len(target), self._size - self._position)
        if count <= 0:
            return 0
        last = self._position + count - 1
        try:
            answer = self._client.get_object(
                Bucket=self._bucket,
                Key=self._name,
                Range=f"bytes={self._position}-{last}",
                IfMatch=self._etag,
            )
            with answer["Body"] as body:
                data = body.read()
        except (BotoCoreError, ClientError) as error:
            raise _unavailable("read audio", error) from None
        if len(data) != count:
            raise _unavailable("read audio", ValueError("short read"))
        target[:count] = data
        self._position += count
        return count
