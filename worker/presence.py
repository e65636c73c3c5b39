"""Heartbeats: each worker process and each watcher says every few seconds that it is
alive and what it runs (model, the execution providers it actually got). `cutout health`
reads them; a record that stops being refreshed expires on its own."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from worker.redisio import Keys

log = logging.getLogger(__name__)

BEAT_SECONDS = 10.0
TTL_SECONDS = 30


class Presence:
    """The heartbeats of one deployment: those under its key prefix."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self.client = client
        self.keys = Keys(prefix)

    def beat(self, kind: str, name: str, info: dict[str, Any]) -> None:
        record = {**info, "name": name, "kind": kind, "time": time.time()}
        self.client.set(self.keys.presence(kind, name), json.dumps(record), ex=TTL_SECONDS)

    def alive(self, kind: str) -> list[dict[str, Any]]:
        keys = sorted(self.client.scan_iter(match=self.keys.presence_pattern(kind), count=500))
        values = self.client.mget(keys) if keys else []
        return [json.loads(v) for v in values if v is not None]

    def forget(self, kind: str, name: str) -> None:
        self.client.delete(self.keys.presence(kind, name))


def keep_beating(
    presence: Presence,
    kind: str,
    name: str,
    info: Callable[[], dict[str, Any]],
    stop: threading.Event,
) -> threading.Thread:
    """A daemon thread that beats until `stop` is set; Redis hiccups are logged, not fatal."""

    def loop() -> None:
        while not stop.is_set():
            try:
                presence.beat(kind, name, info())
            except redis.RedisError as exc:
                log.warning("heartbeat of %s %s failed: %s", kind, name, exc)
            stop.wait(BEAT_SECONDS)

    thread = threading.Thread(target=loop, name=f"cutout-{kind}-beat", daemon=True)
    thread.start()
    return thread
