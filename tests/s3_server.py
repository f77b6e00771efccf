"""An S3 server on loopback for tests: moto's standalone server (``moto[server]``, dev extra) in
a process group of its own, with a fresh bucket.

    from s3_server import s3_server
    with s3_server() as s3:
        running_worker(..., extra_env=s3.env(prefix="run1"))  # SYNIB_STORAGE_URI + credentials
        s3.keys("run1/")                                      # what landed in the bucket

``s3.env()`` holds the settings and the dummy credentials a synib process needs
(SYNIB_STORAGE_URI, SYNIB_S3_ENDPOINT_URL, SYNIB_S3_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_EC2_METADATA_DISABLED); ``s3.apply_env()`` sets the credentials in
this process too (pyarrow reads them from the environment). Import it with tests/ on sys.path
(the test folders' conftest put it there).
"""

from __future__ import annotations

import contextlib
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
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "synib-test-key",
    "AWS_SECRET_ACCESS_KEY": "synib-test-secret",
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups from the SDK
}


@dataclass
class S3Server:
    """A running moto server: its endpoint URL and a bucket made for the test run."""

    endpoint: str
    bucket: str
    log_path: Path

    def uri(self, prefix: str = "") -> str:
        """``s3://bucket/prefix`` (the SYNIB_STORAGE_URI of a store under ``prefix``)."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def env(self, prefix: str = "") -> dict[str, str]:
        """The environment of a synib process whose artifact store is ``uri(prefix)``."""
        return {
            "SYNIB_STORAGE_URI": self.uri(prefix),
            "SYNIB_S3_ENDPOINT_URL": self.endpoint,
            "SYNIB_S3_REGION": REGION,
            **CREDENTIALS,
        }

    def apply_env(self) -> None:
        """Put the dummy credentials in this process's environment (pyarrow reads them)."""
        os.environ.update(CREDENTIALS)

    def filesystem(self) -> Any:
        """A pyarrow S3FileSystem on this server (credentials given explicitly)."""
        from pyarrow import fs

        return fs.S3FileSystem(
            access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
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


@contextlib.contextmanager
def s3_server(log_dir: Path | None = None) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port with a fresh bucket until the block ends; the
    server's process group is stopped afterwards."""
    port = free_port()
    folder = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_path = folder / f"moto-{port}.log"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, **CREDENTIALS}
    with log_path.open("wb") as log:
        proc = start_group(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{port}", f"synib-{secrets.token_hex(4)}", log_path)
    try:
        _wait_ready(server.endpoint, proc, log_path)
        server.filesystem().create_dir(server.bucket)
        yield server
    finally:
        stop_group(proc, grace_s=5)
        with contextlib.suppress(OSError):
            log_path.unlink()
