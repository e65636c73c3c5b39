"""`GET /api/events`: job changes as Server-Sent Events, from the one reader of the event
stream (cutout_http.hub), with a catch-up for clients that come back (Last-Event-ID)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cutout_http.common import AUTHORIZED, Gateway, GatewayDep
from worker.jobs import JobRecord

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0  # a comment line on a quiet stream: proxies keep it open
RETRY_MS = 2000  # how soon an EventSource reconnects
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")

router = APIRouter(prefix="/api", dependencies=AUTHORIZED)


@router.get(
    "/events",
    response_class=StreamingResponse,
    summary="Job changes as Server-Sent Events",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    gw: GatewayDep,
    job_ids: Annotated[
        list[str] | None,
        Query(alias="id", description="Only these jobs (repeat for several); else every job."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this event (what an EventSource sends back)."),
    ] = None,
) -> StreamingResponse:
    """One `job` event per change of any job's record (`data`: the record as JSON; `id`:
    its position in the `cutout:events` stream). With `id=` the named jobs' current
    records come first. Reconnecting with Last-Event-ID replays what was missed."""
    resume = last_event_id if last_event_id and STREAM_ID.fullmatch(last_event_id) else None
    wanted = frozenset(job_ids) if job_ids else None
    return StreamingResponse(
        event_stream(gw, wanted, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def sse(record: JobRecord, entry_id: str | None = None) -> str:
    head = f"id: {entry_id}\n" if entry_id else ""
    return f"{head}event: job\ndata: {record.model_dump_json()}\n\n"


def _position(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def event_stream(
    gw: Gateway, wanted: frozenset[str] | None, resume: str | None
) -> AsyncIterator[str]:
    # Subscribed first, then the catch-up read: nothing falls between the two.
    with gw.hub.subscribe() as subscription:
        yield f"retry: {RETRY_MS}\n\n"
        seen = resume
        for entry_id, record in await _catch_up(gw, wanted, resume):
            if wanted is None or record.id in wanted:
                yield sse(record, entry_id)
            seen = entry_id or seen
        getter: asyncio.Task[Any] | None = None
        try:
            while True:
                # One pending get across keep-alives: cancelling a get could lose an event.
                getter = getter or asyncio.ensure_future(subscription.next())
                done, _ = await asyncio.wait({getter}, timeout=KEEPALIVE_SECONDS)
                if not done:
                    yield ": keep-alive\n\n"
                    continue
                event, getter = getter.result(), None
                if event is None:
                    return
                entry_id, record = event
                if seen is not None and _position(entry_id) <= _position(seen):
                    continue  # sent by the catch-up already
                if wanted is None or record.id in wanted:
                    yield sse(record, entry_id)
        finally:
            if getter is not None:
                getter.cancel()


async def _catch_up(
    gw: Gateway, wanted: frozenset[str] | None, resume: str | None
) -> list[tuple[str | None, JobRecord]]:
    """What was missed since `resume`, else the wanted jobs' current records."""
    try:
        if resume is not None:
            missed = await run_in_threadpool(gw.status.entries_after, resume)
            return [(entry_id, record) for entry_id, record in missed]
        if wanted:
            records = [await run_in_threadpool(gw.status.get, job_id) for job_id in wanted]
            return [(None, r) for r in records if r is not None]
    except redis.RedisError as exc:  # the live part may still come: the hub retries
        log.warning("event stream catch-up failed: %s", exc)
    return []
