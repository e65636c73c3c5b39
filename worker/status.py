"""Job records and events in Redis: what `cutout status` shows and other applications read.

The keys (record, index, event stream, running marks, crash counts, results), their types
and lifetimes are listed in worker.redisio. Every value is plain JSON, readable from any
language. Redis errors propagate: the caller decides whether to retry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import redis
from redis.client import Pipeline
from redis.typing import EncodableT

from worker import redisio
from worker.jobs import FINAL_STATES, JobRecord, State

# Re-exported: worker.app sizes Celery's result-backend retries with these.

EVENTS_MAXLEN = 10_000
EVENTS_BATCH = 100
RECORD_FIELDS = frozenset(JobRecord.model_fields)
# Kept by the store alone, so that every writer agrees on when and how often a job ran.
MANAGED_FIELDS = frozenset({"id", "state", "attempts", "created", "started", "finished"})

RawHash = Mapping[bytes | str, bytes | str]


class StatusStore:
    """Job records, their index and the event stream, under one key prefix.

    `client` must give bytes (decode_responses=False, redis-py's default): results are binary.
    """

    def __init__(
        self, client: redis.Redis, *, prefix: str, ttl: int, result_ttl: int = 3600
    ) -> None:
        if ttl <= 0 or result_ttl <= 0:
            raise ValueError(f"ttl and result_ttl must be positive, not {ttl} and {result_ttl}")
        self.client = client
        self.keys = redisio.Keys(prefix)
        self.ttl = ttl
        self.result_ttl = result_ttl

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        ttl: int,
        result_ttl: int = 3600,
        outage_wait: float = 0.0,
    ) -> StatusStore:
        """A store on its own client (redisio.SERVICE timeouts).

        By default an outage reaches the caller at once (the watcher and the CLI say so and
        go on). `outage_wait` > 0 keeps retrying a lost connection for about that many
        seconds instead: a worker whose job is done waits for Redis to come back rather than
        lose the job's record (and, through the failure, its message).
        """
        retry = redisio.outage_retry(outage_wait)
        client = redisio.client(url, redisio.SERVICE, retry=retry)
        return cls(client, prefix=prefix, ttl=ttl, result_ttl=result_ttl)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> StatusStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- records ---

    def update(self, job_id: str, state: State, **fields: Any) -> JobRecord:
        """Merge `fields` into the job's record, record the event; returns the merged record."""
        record = self._update(job_id, state, fields, only_from=None)
        assert record is not None  # only a condition leaves a record alone
        return record

    def update_if(
        self, job_id: str, only_from: State, state: State, **fields: Any
    ) -> JobRecord | None:
        """As `update`, but only while the record is in state `only_from`; else None and
        nothing written (a worker got there first)."""
        return self._update(job_id, state, fields, only_from=only_from)

    def _update(
        self, job_id: str, state: State, fields: Mapping[str, Any], only_from: State | None
    ) -> JobRecord | None:
        _check_fields(fields)
        key = self.keys.job(job_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH makes EXEC fail if another writer came between our read and write.
                    pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    record = self._write(pipe, key, job_id, state, fields, only_from=only_from)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def _write(
        self,
        pipe: Pipeline,
        key: str,
        job_id: str,
        state: State,
        fields: Mapping[str, Any],
        *,
        only_from: State | None,
    ) -> JobRecord | None:
        old = _decode(key, pipe.hgetall(key)) or None  # runs at once: the pipe is WATCHing
        if only_from is not None and (old is None or old.get("state") != only_from):
            pipe.multi()  # an empty transaction: EXEC still ends the WATCH
            return None
        now = _now()
        record, changed = _merge(job_id, old, state, fields, now)
        pipe.multi()
        # Only the changed fields are written, so nothing another writer set is lost.
        pipe.hset(key, mapping=_encode(record, changed))
        pipe.expire(key, self.ttl)
        pipe.zadd(self.keys.jobs, {job_id: (record.created or now).timestamp()})
        # Entries older than the ttl point (almost always) at expired records.
        pipe.zremrangebyscore(self.keys.jobs, "-inf", now.timestamp() - self.ttl)
        pipe.expire(self.keys.jobs, self.ttl)
        pipe.xadd(
            self.keys.events,
            {"id": job_id, "state": state, "record": record.model_dump_json()},
            maxlen=EVENTS_MAXLEN,
            approximate=True,
        )
        return record

    def get(self, job_id: str) -> JobRecord | None:
        key = self.keys.job(job_id)
        raw = self.client.hgetall(key)
        return _record(key, raw) if raw else None

    def recent(self, limit: int = 50, state: State | None = None) -> list[JobRecord]:
        """Newest first; index entries whose record expired are removed on the way."""
        found: list[JobRecord] = []
        start = 0
        page = limit if state is None else max(limit, 100)
        while len(found) < limit:
            ids = _ids(self.client.zrevrange(self.keys.jobs, start, start + page - 1))
            if not ids:
                break
            records = self._get_many(ids)
            expired = [job_id for job_id, rec in zip(ids, records, strict=True) if rec is None]
            if expired:
                self.client.zrem(self.keys.jobs, *expired)
            found += [r for r in records if r is not None and state in (None, r.state)]
            start += len(ids) - len(expired)
        return found[:limit]

    def find(self, id_prefix: str, limit: int = 10) -> list[str]:
        """Ids in the index that start with `id_prefix` (the short ids `cutout status` shows)."""
        pattern = redisio.glob_escape(id_prefix) + "*"
        ids: list[str] = []
        for member, _score in self.client.zscan_iter(self.keys.jobs, match=pattern):
            ids.append(_text(member))
            if len(ids) >= limit:
                break
        return ids

    # --- events ---

    def follow(
        self, job_id: str | None = None, *, block_ms: int = 1000, timeout: float | None = None
    ) -> Iterator[JobRecord]:
        """Records as changes happen from now on; with job_id only its, until it is final.

        The stream position and the first look at the job are taken by this call, not at
        the first next(), so a change made right after the call is never missed.
        An unknown job is waited for: it may not be queued yet.
        `block_ms` must stay below the client's read timeout (redisio.SERVICE with from_url).
        """
        after = self.stream_position()
        if job_id is not None:
            current = self.get(job_id)
            if current is not None and current.done:
                return iter([current])
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._read_events(after, job_id, block_ms, deadline)

    def _read_events(
        self, after: bytes | str, job_id: str | None, block_ms: int, deadline: float | None
    ) -> Iterator[JobRecord]:
        while (block := _block_for(block_ms, deadline)) is not None:
            after, records = self.read_events(after, block_ms=block)
            for record in records:
                if job_id is not None and record.id != job_id:
                    continue
                yield record
                if job_id is not None and record.done:
                    return

    def read_events(
        self, after: bytes | str, *, block_ms: int = 1000
    ) -> tuple[bytes | str, list[JobRecord]]:
        """One read of the event stream: the records after position `after` (waiting up
        to block_ms for some), and the position to read from next time."""
        after, entries = self.read_entries(after, block_ms=block_ms)
        return after, [record for _, record in entries]

    def read_entries(
        self, after: bytes | str, *, block_ms: int = 1000
    ) -> tuple[bytes | str, list[tuple[str, JobRecord]]]:
        """As read_events, with each record's position in the stream (its entry id)."""
        reply = self.client.xread({self.keys.events: after}, count=EVENTS_BATCH, block=block_ms)
        entries = []
        for entry_id, fields in _entries(reply):
            after = entry_id
            entries.append((_text(entry_id), JobRecord.model_validate_json(fields[b"record"])))
        return after, entries

    def entries_after(
        self, position: str, limit: int = EVENTS_MAXLEN
    ) -> list[tuple[str, JobRecord]]:
        """The events after `position` that the stream still holds, oldest first (at most
        `limit`): what a follower that lost its connection missed."""
        reply = self.client.xrange(self.keys.events, min=f"({position}", count=limit)
        return [
            (_text(entry_id), JobRecord.model_validate_json(fields[b"record"]))
            for entry_id, fields in _entries([(self.keys.events, reply)])
        ]

    def stream_position(self) -> bytes | str:
        """The position of the newest event: reading from it gives only what comes next."""
        last = self.client.xrevrange(self.keys.events, count=1)
        return last[0][0] if last and last[0][0] is not None else b"0-0"

    # --- deliveries and results ---

    def begin_attempt(self, job_id: str) -> int:
        """Mark the job running; returns how many earlier attempts died unfinished.

        An attempt that ends (end_attempt) removes its mark; one whose worker process was
        killed (a poison image, the OOM killer) leaves it behind, and the next delivery
        counts it.
        """
        running = self.keys.running(job_id)
        crashes = self.keys.crashes(job_id)
        if self.client.exists(running):
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(crashes)
                pipe.expire(crashes, self.ttl)
                pipe.execute()
        self.client.set(running, "1", ex=self.ttl)
        return int(self.client.get(crashes) or 0)

    def end_attempt(self, job_id: str) -> None:
        self.client.delete(self.keys.running(job_id))

    def store_result(self, job_id: str, data: bytes) -> None:
        self.client.set(self.keys.result(job_id), data, ex=self.result_ttl)

    def fetch_result(self, job_id: str) -> bytes | None:
        data = self.client.get(self.keys.result(job_id))
        return data.encode() if isinstance(data, str) else data

    def _get_many(self, ids: list[str]) -> list[JobRecord | None]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            raws: list[RawHash] = pipe.execute()
        return [
            _record(self.keys.job(job_id), raw) if raw else None
            for job_id, raw in zip(ids, raws, strict=True)
        ]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - RECORD_FIELDS
    managed = set(fields) & MANAGED_FIELDS
    if unknown or managed:
        raise TypeError(
            f"update() takes JobRecord fields other than {sorted(MANAGED_FIELDS)}; "
            f"got {sorted(unknown | managed)}"
        )


def _merge(
    job_id: str,
    old: dict[str, Any] | None,
    state: State,
    fields: Mapping[str, Any],
    now: datetime,
) -> tuple[JobRecord, set[str]]:
    """The merged record and the names of the fields to write."""
    base = old or {}
    changes: dict[str, Any] = {"id": job_id, "state": state, **fields}
    if base.get("created") is None:
        changes["created"] = now
    if state == "started":
        changes["started"] = now
        changes["attempts"] = int(base.get("attempts") or 0) + 1
        changes["finished"] = None  # a new attempt is not finished, whatever came before
    elif state in FINAL_STATES:
        changes["finished"] = now
    record = JobRecord.model_validate({**base, **changes})
    # A new record is written whole, so that readers of the raw hash see every field.
    return record, set(RECORD_FIELDS) if old is None else set(changes)


def _encode(record: JobRecord, names: set[str]) -> dict[EncodableT, EncodableT]:
    values = record.model_dump(mode="json")
    return {name: json.dumps(values[name]) for name in sorted(names)}


def _decode(key: str, raw: RawHash) -> dict[str, Any]:
    try:
        return {_text(name): json.loads(value) for name, value in raw.items()}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{key}: a field is not JSON ({exc})") from exc


def _record(key: str, raw: RawHash) -> JobRecord:
    return JobRecord.model_validate(_decode(key, raw))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ids(members: Iterable[Any]) -> list[str]:
    return [_text(member) for member in members]


def _block_for(block_ms: int, deadline: float | None) -> int | None:
    """Milliseconds for the next XREAD BLOCK, or None once the deadline has passed."""
    if deadline is None:
        return max(1, block_ms)
    left_ms = int((deadline - time.monotonic()) * 1000)
    # Never 0: BLOCK 0 would wait forever.
    return max(1, min(block_ms, left_ms)) if left_ms > 0 else None


def _entries(reply: Any) -> Iterator[tuple[bytes | str, dict[bytes, bytes]]]:
    """(id, fields) of each entry of an XREAD reply: RESP2's list, or redis-py's unified dict."""
    streams = reply.values() if isinstance(reply, dict) else (s[1] for s in reply or [])
    for entries in streams:
        yield from entries
