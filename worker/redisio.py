"""Redis for the service: how a client is made and the name of every key it writes.

Every key lives under one prefix (`CUTOUT_KEY_PREFIX`, "cutout" by default), so that two
deployments can share a Redis without seeing each other. Values are readable from any
language: JSON where they are structured, plain strings and counters elsewhere:

    {prefix}:job:{id}               hash, one field per JobRecord field (JSON values);
                                    expires CUTOUT_STATUS_TTL after its last change
    {prefix}:jobs                   sorted set of job ids scored by creation time (listing);
                                    expires CUTOUT_STATUS_TTL after its last change
    {prefix}:events                 stream, one entry per change: id, state, record;
                                    capped near 10,000 entries, no expiry
    {prefix}:running:{id}           string, set while an attempt runs and left behind when
                                    its worker died; expires CUTOUT_STATUS_TTL
    {prefix}:crashes:{id}           counter of attempts whose worker died (poison-image
                                    guard); expires CUTOUT_STATUS_TTL
    {prefix}:result:{id}            bytes of a job that returns them; expires CUTOUT_RESULT_TTL
    {prefix}:presence:{kind}:{name} string, JSON heartbeat of a worker process or a watcher;
                                    expires 30 s after its last beat
    {prefix}:output:{path}          string, the input's path in the inbox: the (absolute)
                                    output path is reserved by the watcher for that input's
                                    job; expires CUTOUT_STATUS_TTL
    {prefix}:resend:{id}            string, one watcher's turn to send a lost job again;
                                    expires after 60 s

Celery's own keys are Celery's (kombu's) and keep their names, outside the prefix: the
queue list (`CUTOUT_QUEUE`, "cutout"), `unacked`, `unacked_index`, `unacked_mutex`, the
`_kombu.binding.*` sets and the results `celery-task-meta-<id>`. Two deployments on one
Redis therefore need different queues as well as different prefixes (or databases of their
own).

Clients give bytes (redis-py's default): results are binary, and readers decode text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePath

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from worker.naming import as_text

# --- clients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """Seconds a client waits to connect (TCP, TLS handshake) and for each reply."""

    connect: float
    read: float


# A Redis on this machine (is one there? stop `cutout up`'s own): a local server answers in
# milliseconds, so silence means none there (and `cutout up` starts its own).
PROBE = Timeouts(connect=0.5, read=0.5)
# One question a person, a health check or a scrape waits on (PING, a TLS handshake, the
# heartbeats, the queue length): three of them fit in a compose health check's 10 s.
CHECK = Timeouts(connect=3.0, read=3.0)
# The long-lived client of a worker, the watcher or `cutout status`: a remote Redis behind
# TLS connects within 5 s, and a read outlasts every blocking XREAD the store issues.
SERVICE = Timeouts(connect=5.0, read=30.0)

OUTAGE_BACKOFF_CAP = 2.0  # seconds between tries once an outage has lasted a while


def outage_retries(seconds: float) -> int:
    """Retries that, at OUTAGE_BACKOFF_CAP apart, span about `seconds`."""
    return max(1, math.ceil(seconds / OUTAGE_BACKOFF_CAP))


def outage_retry(seconds: float) -> Retry:
    """With 0, one immediate retry: it survives a pooled connection the server dropped, and
    an outage reaches the caller at once. Above 0, retries with backoff for about that many
    seconds: a worker whose job is done waits for Redis to come back rather than lose it."""
    if seconds <= 0:
        return Retry(NoBackoff(), 1)
    return Retry(ExponentialBackoff(cap=OUTAGE_BACKOFF_CAP, base=0.1), outage_retries(seconds))


def client(url: str, timeouts: Timeouts, *, retry: Retry | None = None) -> redis.Redis:
    """The one way the service connects to Redis; bytes responses. Close it (or use `with`).

    Without `retry` a command is tried once: the caller hears of the first failure.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeouts.connect,
        socket_timeout=timeouts.read,
        retry=retry or Retry(NoBackoff(), 0),
    )


# --- keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """The name of every key the service writes, under `prefix` (validated by Settings)."""

    prefix: str

    @property
    def jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def running(self, job_id: str) -> str:
        return f"{self.prefix}:running:{job_id}"

    def crashes(self, job_id: str) -> str:
        return f"{self.prefix}:crashes:{job_id}"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}:result:{job_id}"

    def presence(self, kind: str, name: str) -> str:
        return f"{self.prefix}:presence:{kind}:{name}"

    def presence_pattern(self, kind: str) -> str:
        """SCAN's MATCH for every heartbeat of `kind`, and nothing of another prefix."""
        return f"{glob_escape(self.presence(kind, ''))}*"

    def output(self, path: str | PurePath) -> str:
        return f"{self.prefix}:output:{as_text(path)}"

    def resend(self, job_id: str) -> str:
        return f"{self.prefix}:resend:{job_id}"


def glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN/ZSCAN MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
