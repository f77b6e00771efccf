"""Fixtures of the cluster tests: one two-node Ray cluster on loopback per test module
(``ray_cluster``), and the service's real Celery worker joined to it as a driver
(``SYNIB_RAY_ADDRESS``), on a Redis database of these tests' own and the test PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_testing import redis_url
from ray_cluster import RayCluster, ray_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))

from worker_process import create_owner, running_worker
from worker_testing import WorkerHarness

BROKER_URL = redis_url(7)  # the test Redis (SYNIB_TEST_REDIS_URL), a database of its own


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A head (custom resource ``head``) and a second raylet (``node2``), 1 CPU each."""
    with ray_cluster(tmp_path_factory.mktemp("ray-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def broker_url() -> str:
    """The cluster tests' broker: a Redis database of their own (flushed by each worker)."""
    return BROKER_URL


@pytest.fixture(scope="module")
def storage_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The storage settings of every worker of a module (``SYNIB_*`` environment): the
    artifacts and Tune's experiments in one folder the workers share, as on one host; a
    cluster of several hosts would put them on shared storage or object storage instead."""
    return {"SYNIB_ARTIFACT_DIR": str(tmp_path_factory.mktemp("shared_artifacts"))}


@pytest.fixture(scope="module")
def cluster_worker(
    cluster: RayCluster, pg_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHarness]:
    """A Celery worker (concurrency 1) whose Ray is the cluster (it joins as a driver)."""
    state = tmp_path_factory.mktemp("cluster_worker")
    with running_worker(
        pg_database_url, state, extra_env=cluster.driver_env(), broker_url=BROKER_URL
    ) as harness:
        yield harness


@pytest.fixture(scope="module")
def owner_id(cluster_worker: WorkerHarness) -> str:
    return create_owner(cluster_worker)
