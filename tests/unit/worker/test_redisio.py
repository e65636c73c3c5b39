"""worker.redisio: the one place a Redis client is made, and every key under the prefix."""

from __future__ import annotations

import ast
import inspect
import os
from fnmatch import fnmatchcase
from pathlib import Path

from tests.conftest import ROOT
from worker.redisio import PROBE, Keys, client

PRODUCT_PACKAGES = ("cutout", "settings", "worker", "watcher", "cutout_cli")
FACTORY = Path("worker/redisio.py")
# Calls that make a client: redis.Redis(...), Redis.from_url(...), redis.from_url(...), ...
CLIENT_CLASSES = frozenset({"Redis", "StrictRedis", "ConnectionPool"})


def every_key(keys: Keys) -> dict[str, str]:
    """Each key name of `keys`, found by looking (so a key added later is checked too), with
    "a" for every id, kind, name or path."""
    names = {}
    for attribute, _ in inspect.getmembers(type(keys)):
        if attribute.startswith("_") or attribute == "prefix":
            continue
        value = getattr(keys, attribute)
        if callable(value):
            value = value(*["a"] * len(inspect.signature(value).parameters))
        names[attribute] = value
    return names


def test_every_key_is_under_the_prefix() -> None:
    found = every_key(Keys("x"))
    assert len(found) >= 9  # job, jobs, events, running, crashes, result, presence(+pattern)...
    for attribute, name in found.items():
        assert name.startswith("x:"), f"Keys.{attribute} gives {name!r}"


def test_default_names_stay_what_deployments_and_other_apps_read() -> None:
    keys = Keys("cutout")
    assert (keys.job("j"), keys.jobs, keys.events) == (
        "cutout:job:j",
        "cutout:jobs",
        "cutout:events",
    )
    assert (keys.running("j"), keys.crashes("j"), keys.result("j")) == (
        "cutout:running:j",
        "cutout:crashes:j",
        "cutout:result:j",
    )
    assert keys.presence("worker", "h:1") == "cutout:presence:worker:h:1"
    assert keys.output(Path("/data/out/a b.png")) == "cutout:output:/data/out/a b.png"
    assert keys.resend("j") == "cutout:resend:j"


def test_presence_pattern_matches_its_own_heartbeats_only() -> None:
    keys = Keys("blue")
    pattern = keys.presence_pattern("worker")
    assert fnmatchcase(keys.presence("worker", "host:42"), pattern)
    assert not fnmatchcase(keys.presence("watcher", "host:42"), pattern)
    assert not fnmatchcase(Keys("blue2").presence("worker", "host:42"), pattern)


def test_client_gives_bytes_and_the_chosen_timeouts() -> None:
    """No server is needed: the settings are read off the client's connection pool."""
    with client("redis://127.0.0.1:1/0", PROBE) as made:
        kwargs = made.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (0.5, 0.5)
    assert not kwargs.get("decode_responses")


def constructions(path: Path) -> list[str]:
    """`file:line: call` for each call in `path` that makes a Redis client or pool."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        parts = ast.unparse(node.func).split(".")
        from_url = (
            parts[-1] == "from_url" and len(parts) > 1 and parts[-2] in {"redis", *CLIENT_CLASSES}
        )
        if parts[-1] in CLIENT_CLASSES or from_url:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_only_redisio_makes_redis_clients() -> None:
    # The factory's own call is found: the scan cannot pass by recognising nothing.
    assert constructions(ROOT / FACTORY)
    offenders = [
        found
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT) != FACTORY
        for found in constructions(path)
    ]
    assert not offenders, "Redis clients made outside worker.redisio.client:\n" + "\n".join(
        offenders
    )


def test_an_output_path_that_is_not_utf8_still_makes_a_key() -> None:
    """A file name of Latin-1 bytes (as old cameras and SMB shares write) reserves its output
    like any other, instead of failing to encode (and stopping the watcher's resend)."""
    path = Path(os.fsdecode(b"/data/outbox/caf\xe9.png"))
    key = Keys("cutout").output(path)
    assert key == "cutout:output:/data/outbox/caf\\xe9.png"
    key.encode("utf-8")  # what redis-py does with it
