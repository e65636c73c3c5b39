"""One reader of the event stream for the whole gateway, and every request that waits on it.

Each waiting `POST /api/remove` and each `GET /api/events` client would otherwise hold a
thread and a Redis connection blocked in XREAD. Here one task reads the stream (in a thread:
redis-py's client is blocking) and hands each change to the requests that wait for it, on
the event loop: a thousand waiters cost a thousand futures, not a thousand threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from worker.jobs import JobRecord
from worker.status import StatusStore

log = logging.getLogger(__name__)

BLOCK_MS = 1000  # one XREAD's wait: how long a stop may wait for the reading thread
OUTAGE_PAUSE = (0.5, 5.0)  # seconds between reads while Redis is away: first, at most
QUEUE_SIZE = 1000  # events a slow stream client may fall behind before it is let go

Event = tuple[str, JobRecord]  # (its id in the stream, the record)


class HubClosed(Exception):
    """The gateway is stopping: nothing more will come."""


class Subscription:
    """Every change from now on, in order, for one events client."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE + 1)
        self.dropped = False

    def offer(self, event: Event) -> None:
        if self.dropped:
            return
        if self.queue.qsize() >= QUEUE_SIZE:
            # Too far behind: end its stream; it comes back with Last-Event-ID and catches up.
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)

    def end(self) -> None:
        if not self.dropped:
            self.dropped = True
            self.queue.put_nowait(None)

    async def next(self) -> Event | None:
        """The next change, or None once the stream is over (the gateway stops, or the
        client fell too far behind)."""
        return await self.queue.get()


class EventHub:
    def __init__(self, status: StatusStore) -> None:
        self.status = status
        self._waiters: dict[str, set[asyncio.Future[JobRecord]]] = {}
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

    @property
    def waiting(self) -> int:
        return sum(len(futures) for futures in self._waiters.values())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cutout-events")

    async def stop(self) -> None:
        self.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def close(self) -> None:
        """End every stream and fail every wait now: a stopping server waits for open
        responses, and an event stream never ends on its own."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end()
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(HubClosed())
        self._waiters.clear()

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        if self._closed:
            subscription.end()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    @contextmanager
    def waiter(self, job_id: str) -> Iterator[asyncio.Future[JobRecord]]:
        """A future for the job's final record, registered from now on: register before
        sending the job (or look at its record after) so that its end is not missed."""
        future: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(HubClosed())
        else:
            self._waiters.setdefault(job_id, set()).add(future)
        try:
            yield future
        finally:
            futures = self._waiters.get(job_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiters[job_id]

    def publish(self, event: Event) -> None:
        """Hand one change to whoever waits for it (on the event loop)."""
        _, record = event
        for subscription in list(self._subscriptions):
            subscription.offer(event)
        if record.done:
            for future in self._waiters.pop(record.id, set()):
                if not future.done():
                    future.set_result(record)

    async def _run(self) -> None:
        after: bytes | str | None = None
        pause = OUTAGE_PAUSE[0]
        while not self._closed:
            try:
                if after is None:
                    after = await asyncio.to_thread(self.status.stream_position)
                after, events = await asyncio.to_thread(
                    self.status.read_entries, after, block_ms=BLOCK_MS
                )
            except redis.RedisError as exc:
                # Waiters time out as they would; streams stay open and resume.
                log.warning("event stream unreadable (%s): trying again in %g s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, OUTAGE_PAUSE[1])
                continue
            pause = OUTAGE_PAUSE[0]
            for event in events:
                self.publish(event)
