"""An S3 server on loopback for tests: moto's standalone server (``moto[server]``, dev extra) in
a process group of its own, with a fresh bucket, that checks every request's credentials.

    from s3_server import s3_server
    with s3_server() as s3:
        running_worker(..., extra_env=s3.env(prefix="run1"))  # SYNIB_STORAGE_URI + credentials
        s3.keys("run1/")                                      # what landed in the bucket

moto checks signatures and IAM policies once ``INITIAL_NO_AUTH_ACTION_COUNT`` actions have
passed unchecked (moto's documented IAM authentication): the server starts with that count at
3, and those 3 actions make an IAM user, its policy (``s3:*`` on the test bucket only) and its
access key. That key pair, fresh for each server, is ``s3.credentials``; the bucket is made with
it and a request signed with a wrong secret is refused before the block starts, so a process
that lacks the credentials (or has wrong ones) fails as it would against a real bucket.

``s3.env()`` holds the settings and the credentials a synib process needs (SYNIB_STORAGE_URI,
SYNIB_S3_ENDPOINT_URL, SYNIB_S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_EC2_METADATA_DISABLED); ``s3.apply_env()`` sets the credentials in this process too (pyarrow
reads them from the environment). Import it with tests/ on sys.path (the test folders' conftest
put it there).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from processes import free_port, start_group, stop_group

REGION = "us-east-1"
CREDENTIAL_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED")
UNCHECKED_ACTIONS = 3  # create_user, put_user_policy, create_access_key (see _make_access_key)
USER = "synib-tests"


@dataclass
class S3Server:
    """A running moto server: its endpoint URL and a bucket made for the test run."""

    endpoint: str
    bucket: str
    log_path: Path
    credentials: dict[str, str]  # CREDENTIAL_NAMES -> the IAM user's key pair, metadata off

    def uri(self, prefix: str = "") -> str:
        """``s3://bucket/prefix`` (the SYNIB_STORAGE_URI of a store under ``prefix``)."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def env(self, prefix: str = "") -> dict[str, str]:
        """The environment of a synib process whose artifact store is ``uri(prefix)``."""
        return {
            "SYNIB_STORAGE_URI": self.uri(prefix),
            "SYNIB_S3_ENDPOINT_URL": self.endpoint,
            "SYNIB_S3_REGION": REGION,
            **self.credentials,
        }

    def apply_env(self) -> None:
        """Put the credentials in this process's environment (pyarrow reads them)."""
        os.environ.update(self.credentials)

    def filesystem(self, secret_key: str | None = None) -> Any:
        """A pyarrow S3FileSystem on this server (credentials given explicitly; ``secret_key``
        replaces the right secret, to see the server refuse a wrong one)."""
        from pyarrow import fs

        return fs.S3FileSystem(
            access_key=self.credentials["AWS_ACCESS_KEY_ID"],
            secret_key=secret_key or self.credentials["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=self.endpoint.removeprefix("http://"),
            scheme="http",
            region=REGION,
            allow_bucket_creation=True,
        )

    def keys(self, prefix: str = "") -> dict[str, int]:
        """key (relative to the bucket) -> size of every object under ``prefix``."""
        from pyarrow import fs

        selector = fs.FileSelector(
            f"{self.bucket}/{prefix}".rstrip("/"), recursive=True, allow_not_found=True
        )
        infos = self.filesystem().get_file_info(selector)
        return {
            i.path.removeprefix(f"{self.bucket}/"): int(i.size)
            for i in infos
            if i.type == fs.FileType.File
        }


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"moto_server exited:\n{log_path.read_text()[-2000:]}"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/moto-api/", timeout=2).status_code < 500:
                return
        assert time.monotonic() < deadline, f"moto_server did not answer:\n{log_path.read_text()}"
        time.sleep(0.2)


def _make_access_key(endpoint: str, bucket: str) -> dict[str, str]:
    """The first ``UNCHECKED_ACTIONS`` actions (not checked, so any signature passes): an IAM
    user allowed ``s3:*`` on ``bucket`` and its objects, and its access key, as credentials."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    iam.create_user(UserName=USER)
    iam.put_user_policy(UserName=USER, PolicyName="test-bucket", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups from the SDK
    }


def _assert_wrong_secret_refused(server: S3Server) -> None:
    """A request signed with a wrong secret must fail (else the server checks nothing)."""
    try:
        server.filesystem(secret_key="wrong-" + secrets.token_hex(8)).get_file_info(server.bucket)
    except OSError as exc:
        assert "ACCESS_DENIED" in str(exc) or "SIGNATURE" in str(exc), exc
        return
    raise AssertionError("moto_server accepted a request signed with a wrong secret")


@contextlib.contextmanager
def s3_server(log_dir: Path | None = None) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, checking credentials, with a fresh bucket made
    by the IAM user whose key is ``credentials`` until the block ends; the server's process
    group is stopped afterwards."""
    port = free_port()
    folder = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_path = folder / f"moto-{port}.log"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNCHECKED_ACTIONS)}
    with log_path.open("wb") as log:
        proc = start_group(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    endpoint, bucket = f"http://127.0.0.1:{port}", f"synib-{secrets.token_hex(4)}"
    try:
        _wait_ready(endpoint, proc, log_path)
        server = S3Server(endpoint, bucket, log_path, _make_access_key(endpoint, bucket))
        server.filesystem().create_dir(server.bucket)
        _assert_wrong_secret_refused(server)
        yield server
    finally:
        stop_group(proc, grace_s=5)
        with contextlib.suppress(OSError):
            log_path.unlink()
