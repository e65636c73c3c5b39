"""Two deployments on one real Redis, each under its own CUTOUT_KEY_PREFIX, never see each
other's job records, events, results or heartbeats: not through the store, and not through
`cutout status` and `cutout health` as their users run them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from click.testing import CliRunner, Result

from cutout_cli.main import cli
from worker.presence import Presence
from worker.status import StatusStore

TTL = 60


@dataclass
class Deployment:
    prefix: str
    store: StatusStore
    presence: Presence


def drop_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def deployments(redis_url: str) -> Iterator[tuple[Deployment, Deployment]]:
    """ "blue-…" and "blue-…-2" (one a prefix of the other: the closest two names can be)."""
    blue = f"blue-{uuid.uuid4().hex[:8]}"
    made = []
    for prefix in (blue, f"{blue}-2"):
        store = StatusStore.from_url(redis_url, prefix=prefix, ttl=TTL)
        made.append(Deployment(prefix, store, Presence(store.client, prefix=prefix)))
    yield made[0], made[1]
    for deployment in made:
        drop_keys(deployment.store.client, deployment.prefix)
        deployment.store.close()


def cutout(redis_url: str, prefix: str, *args: str) -> Result:
    env = {
        "CUTOUT_BROKER_URL": redis_url,
        "CUTOUT_RESULT_BACKEND": redis_url,
        "CUTOUT_KEY_PREFIX": prefix,
    }
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def test_records_events_and_results_stay_with_their_deployment(
    deployments: tuple[Deployment, Deployment],
) -> None:
    one, two = deployments
    positions = [d.store.stream_position() for d in deployments]
    job = str(uuid.uuid4())
    one.store.update(job, "succeeded", input="a.jpg", output="a.png")
    one.store.store_result(job, b"\x89PNG")

    assert one.store.get(job) is not None and one.store.fetch_result(job) == b"\x89PNG"
    assert two.store.get(job) is None and two.store.fetch_result(job) is None
    assert two.store.recent() == [] and two.store.find(job[:8]) == []
    _, seen_by_one = one.store.read_events(positions[0], block_ms=1000)
    _, seen_by_two = two.store.read_events(positions[1], block_ms=10)
    assert [r.id for r in seen_by_one] == [job] and seen_by_two == []


def test_heartbeats_stay_with_their_deployment(
    deployments: tuple[Deployment, Deployment],
) -> None:
    one, two = deployments
    one.presence.beat("worker", "box:1", {"host": "elsewhere"})
    two.presence.beat("watcher", "box:2", {"host": "elsewhere"})
    assert [w["name"] for w in one.presence.alive("worker")] == ["box:1"]
    assert two.presence.alive("worker") == [] and one.presence.alive("watcher") == []


def test_status_and_health_read_the_configured_prefix(
    redis_url: str, deployments: tuple[Deployment, Deployment]
) -> None:
    one, two = deployments
    job = str(uuid.uuid4())
    one.store.update(job, "queued", input="a.jpg")
    one.presence.beat(
        "worker",
        "box:1",
        {"host": "elsewhere", "hostname": "box", "model": "u2netp", "providers": ["CPU"]},
    )

    listed = json.loads(cutout(redis_url, one.prefix, "status", "--json").stdout)
    assert [r["id"] for r in listed] == [job]
    assert json.loads(cutout(redis_url, two.prefix, "status", "--json").stdout) == []
    assert cutout(redis_url, two.prefix, "status", job).exit_code == 1  # no such job there

    assert cutout(redis_url, one.prefix, "health").exit_code == 0
    unhealthy = cutout(redis_url, two.prefix, "health", "--json")
    assert unhealthy.exit_code == 1
    assert "no live worker" in unhealthy.stdout
