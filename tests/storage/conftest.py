"""A local S3-compatible server (moto's standalone server on 127.0.0.1) for storage tests."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import server as moto_server

from tests.support.server import free_port

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


def speech_windows(audio: bytes, count: int = 16) -> list[bytes]:
    """32-byte windows spread over the recording, skipping silence (runs of zeros also turn
    up in databases, and would prove nothing)."""
    step = len(audio) // (4 * count + 1)
    spread = (audio[i : i + 32] for i in range(step, len(audio) - 32, step))
    return [w for w in spread if len(set(w)) >= 16][:count]


@dataclass
class S3Server:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        name = f"clinscribe-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        client = self.client()
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for item in listed
        }

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The service's settings for this bucket."""
        return {
            "CLINSCRIBE_STORAGE__BACKEND": "s3",
            "CLINSCRIBE_STORAGE__S3_BUCKET": bucket,
            "CLINSCRIBE_STORAGE__S3_PREFIX": prefix,
            "CLINSCRIBE_STORAGE__S3_ENDPOINT_URL": self.endpoint_url,
            "CLINSCRIBE_STORAGE__S3_REGION": REGION,
            "CLINSCRIBE_STORAGE__S3_ACCESS_KEY_ID": ACCESS_KEY,
            "CLINSCRIBE_STORAGE__S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # Never real AWS: dummy credentials everywhere, and only this loopback endpoint is used.
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            env.setenv(name, value)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        port = free_port()
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield S3Server(f"http://127.0.0.1:{port}")
        finally:
            server.stop()
