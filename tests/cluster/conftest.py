"""Fixtures of the cluster tests: one two-node Ray cluster on loopback per test module
(``ray_cluster``), and the service's real Celery worker joined to it as a driver
(``SYNIB_RAY_ADDRESS``), on a Redis database of these tests' own and the test PostgreSQL. The
storage is a bucket of moto's S3 server on loopback (the session's ``s3`` fixture), a prefix
per module: every process (workers, the API, the trials on both nodes) reaches it."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_testing import redis_url
from ray_cluster import RayCluster, ray_cluster
from s3_server import S3Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))

from worker_process import create_owner, running_worker
from worker_testing import WorkerHarness

BROKER_URL = redis_url(7)  # the test Redis (SYNIB_TEST_REDIS_URL), a database of its own


@pytest.fixture(scope="module")
def cluster(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A head (custom resource ``head``) and a second raylet (``node2``), 1 CPU each. The
    nodes start with this process's environment, where ``s3`` put the bucket's credentials:
    Tune's trials run in the nodes' worker processes and upload their checkpoints themselves
    (pyarrow reads the credentials from the environment of each process)."""
    with ray_cluster(tmp_path_factory.mktemp("ray-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def broker_url() -> str:
    """The cluster tests' broker: a Redis database of their own (flushed by each worker)."""
    return BROKER_URL


@pytest.fixture(scope="module")
def storage_prefix(request: pytest.FixtureRequest) -> str:
    """The module's prefix in the bucket (``cluster-<module>-<random>``)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return f"cluster-{module}-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def storage_env(s3: S3Server, storage_prefix: str) -> dict[str, str]:
    """The storage settings of every process of a module (``SYNIB_*`` environment and the
    credentials): ``SYNIB_STORAGE_URI=s3://<bucket>/<storage_prefix>``, so the artifacts and
    Tune's experiments (``<prefix>/tune``) are objects that every node and worker reaches, as
    on a cluster of several hosts."""
    return s3.env(storage_prefix)


@pytest.fixture(scope="module")
def cluster_worker(
    cluster: RayCluster,
    pg_database_url: str,
    storage_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerHarness]:
    """A Celery worker (concurrency 1) whose Ray is the cluster (it joins as a driver), its
    storage the module's prefix of the bucket."""
    state = tmp_path_factory.mktemp("cluster_worker")
    env = {**cluster.driver_env(), **storage_env}
    with running_worker(pg_database_url, state, extra_env=env, broker_url=BROKER_URL) as harness:
        yield harness


@pytest.fixture(scope="module")
def owner_id(cluster_worker: WorkerHarness) -> str:
    return create_owner(cluster_worker)
