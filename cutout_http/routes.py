"""The API: rembg's `POST /api/remove`, the job routes, the zip of results, the options
the page shows, and /metrics (the event stream is cutout_http.events).

Errors are JSON, `{"error": ..., "file": ...}` and the job's `id` where there is one. The
handlers never block the event loop: Redis and Celery calls run in the thread pool, and
waiting for a job is a future the event hub (cutout_http.hub) resolves.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import redis
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from kombu.exceptions import OperationalError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cutout.options import JOB_OPTIONS
from cutout_http.common import AUTHORIZED, ApiError, Gateway, GatewayDep
from cutout_http.fields import REMBG_COLOUR_HELP, FieldError, form_model, job_options
from cutout_http.hub import HubClosed
from cutout_http.media import (
    ACCEPTED,
    build_zip,
    chunks,
    content_type,
    disposition,
    image_format,
    result_name,
)
from worker.jobs import SENDER_ERRORS, JobError, JobRecord, State

log = logging.getLogger(__name__)

JOB_HEADER = "Cutout-Job-Id"
ZIP_MAX_JOBS = 1000
# The queue's Redis or the broker is away (redis-py's and kombu's errors have no common base).
QUEUE_ERRORS = (redis.RedisError, OperationalError, OSError)

if TYPE_CHECKING:
    RemoveForm = BaseModel
else:
    RemoveForm = form_model()
UploadForm = Annotated[RemoveForm, Form(media_type="multipart/form-data")]


router = APIRouter(prefix="/api", dependencies=AUTHORIZED)
operations = APIRouter(dependencies=AUTHORIZED, include_in_schema=False)

# --- uploads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    data: bytes
    name: str | None
    options: dict[str, Any]


async def read_upload(form: BaseModel, gw: Gateway) -> Upload:
    """The image and the job's options, or the 413/422 that says what is wrong with them."""
    values = {name: getattr(form, name) for name in type(form).model_fields}
    file = values.pop("file")
    name = file.filename or None
    try:
        options = job_options(values)
    except FieldError as exc:
        raise ApiError(422, str(exc), file=name) from None
    cap = gw.config.max_upload_bytes
    data = await file.read(cap + 1)
    if len(data) > cap:
        raise ApiError(
            413, f"larger than the limit of {cap} bytes (CUTOUT_INLINE_MAX_BYTES)", file=name
        )
    if image_format(data) is None:
        what = "an empty file" if not data else "not an image"
        raise ApiError(422, f"{what}; accepted: {ACCEPTED}", file=name)
    return Upload(data, name, options)


async def submit(gw: Gateway, upload: Upload, job_id: str) -> None:
    try:
        await run_in_threadpool(
            gw.client.submit_bytes, upload.data, name=upload.name, job_id=job_id, **upload.options
        )
    except JobError as exc:
        raise ApiError(422, str(exc), file=upload.name) from None
    except QUEUE_ERRORS as exc:
        # Said in the log; the caller learns no host nor port of the service's Redis.
        log.warning("job not queued: %s", exc)
        raise ApiError(503, "the queue is unreachable; try again later", file=upload.name) from None


def links(request: Request, job_id: str) -> dict[str, str]:
    """Paths (under the root path a proxy may mount the gateway at) a caller follows next."""
    base = f"{request.scope.get('root_path', '')}/api"
    quoted = quote(job_id, safe="")
    return {
        "self": f"{base}/jobs/{quoted}",
        "result": f"{base}/jobs/{quoted}/result",
        "events": f"{base}/events?id={quoted}",
    }


def job_view(request: Request, record: JobRecord) -> dict[str, Any]:
    return {**record.model_dump(mode="json"), "links": links(request, record.id)}


def failure(record: JobRecord, status: int) -> ApiError:
    return ApiError(
        status,
        record.error or "failed",
        file=record.input,
        id=record.id,
        state=record.state,
        error_kind=record.error_kind,
    )


def image_response(record: JobRecord, data: bytes) -> Response:
    return Response(
        data,
        media_type=content_type(data),
        headers={
            "Content-Disposition": disposition("inline", result_name(record.input, data)),
            JOB_HEADER: record.id,
        },
    )


# --- rembg's route -----------------------------------------------------------------------

IMAGE_ANSWER = {
    "content": {"image/png": {}, "image/webp": {}, "image/jpeg": {}},
    "description": "The cut-out, in the format asked for (else the workers' setting).",
}
ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token."},
    413: {"description": "The image is larger than CUTOUT_INLINE_MAX_BYTES."},
    422: {"description": "Not an image, a broken one, or an option out of its range."},
    503: {"description": "The queue (Redis) is unreachable, or the gateway is stopping."},
}


@router.post(
    "/remove",
    response_class=Response,
    summary="Remove the background (rembg-compatible)",
    responses={
        200: IMAGE_ANSWER,
        **ERROR_ANSWERS,
        500: {"description": "The job failed on the service's side (model, time limit)."},
        504: {"description": "Not done within CUTOUT_HTTP_WAIT_SECONDS: poll the job's id."},
    },
)
async def remove(
    request: Request,
    form: UploadForm,
    gw: GatewayDep,
    bgc: Annotated[str | None, Query(description=REMBG_COLOUR_HELP)] = None,
) -> Response:
    """rembg's `POST /api/remove`: send the image (field `file`) and options, get the
    cut-out back once a worker has made it. rembg's names (`model`, `a`, `af`, `ab`, `ae`,
    `om`, `ppm`, `bgc`) work as in `rembg s`, beside ours."""
    if bgc is not None and getattr(form, "bgc", None) is None:
        form = form.model_copy(update={"bgc": bgc})
    upload = await read_upload(form, gw)
    job_id = str(uuid.uuid4())
    # Registered before the job is sent, so that its end, however quick, is not missed.
    with gw.hub.waiter(job_id) as done:
        await submit(gw, upload, job_id)
        record = await finish(request, gw, job_id, done)
    if record.state == "failed":
        raise failure(record, 422 if record.error_kind in SENDER_ERRORS else 500)
    data = await run_in_threadpool(gw.status.fetch_result, job_id)
    if data is None:
        raise ApiError(500, "the job succeeded but kept no result", id=job_id)
    return image_response(record, data)


async def finish(
    request: Request, gw: Gateway, job_id: str, done: asyncio.Future[JobRecord]
) -> JobRecord:
    wait = gw.config.wait_seconds
    try:
        return await asyncio.wait_for(done, wait)
    except asyncio.TimeoutError:
        pass
    except HubClosed:
        raise ApiError(
            503,
            "the gateway is stopping; the job goes on: poll its id",
            id=job_id,
            links=links(request, job_id),
        ) from None
    # A last look: the hub may have been cut off from Redis for a while.
    record = await run_in_threadpool(gw.status.get, job_id)
    if record is not None and record.done:
        return record
    where = links(request, job_id)
    raise ApiError(
        504,
        f"not done after {wait:g} s; the job goes on: poll {where['self']}",
        headers={"Location": where["self"], "Retry-After": "5"},
        id=job_id,
        state=record.state if record else None,
        links=where,
    )


# --- jobs ----------------------------------------------------------------------------------


@router.post(
    "/jobs",
    status_code=202,
    summary="Queue an image",
    responses={202: {"description": "Queued: the job's record, with links."}, **ERROR_ANSWERS},
)
async def create_job(request: Request, form: UploadForm, gw: GatewayDep) -> JSONResponse:
    """Queue the image (field `file`) with options; follow the job by its id, the event
    stream, or both. Its result is kept CUTOUT_RESULT_TTL seconds."""
    upload = await read_upload(form, gw)
    job_id = str(uuid.uuid4())
    await submit(gw, upload, job_id)
    record = await run_in_threadpool(gw.status.get, job_id)
    if record is None:  # only a status TTL shorter than this call would do it
        record = JobRecord.model_validate({"id": job_id, "state": "queued", "input": upload.name})
    view = job_view(request, record)
    return JSONResponse(view, 202, headers={"Location": view["links"]["self"]})


@router.get("/jobs", summary="Recent jobs, newest first")
async def list_jobs(
    request: Request,
    gw: GatewayDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    state: State | None = None,
) -> dict[str, list[dict[str, Any]]]:
    records = await run_in_threadpool(gw.status.recent, limit, state)
    return {"jobs": [job_view(request, r) for r in records]}


async def known_job(gw: Gateway, job_id: str) -> JobRecord:
    record = await run_in_threadpool(gw.status.get, job_id)
    if record is None:
        raise ApiError(404, "no such job (or its record expired)", id=job_id)
    return record


@router.get("/jobs/{job_id}", summary="A job's record", responses={404: {}})
async def get_job(request: Request, job_id: str, gw: GatewayDep) -> dict[str, Any]:
    return job_view(request, await known_job(gw, job_id))


@router.get(
    "/jobs/{job_id}/result",
    response_class=Response,
    summary="A job's result",
    responses={
        200: IMAGE_ANSWER,
        404: {"description": "No such job, or not done yet."},
        409: {"description": "The job failed: the error."},
        410: {"description": "Done, but its result expired (CUTOUT_RESULT_TTL)."},
    },
)
async def get_result(job_id: str, gw: GatewayDep) -> Response:
    record = await known_job(gw, job_id)
    if not record.done:
        raise ApiError(
            404,
            f"not done yet ({record.state})",
            headers={"Retry-After": "1"},
            id=job_id,
            state=record.state,
        )
    if record.state == "failed":
        raise failure(record, 409)
    if not record.has_bytes:
        raise ApiError(
            404,
            "this job wrote its result to a file, not to Redis",
            id=job_id,
            output=record.output,
        )
    data = await run_in_threadpool(gw.status.fetch_result, job_id)
    if data is None:
        raise ApiError(410, "the result expired (CUTOUT_RESULT_TTL)", id=job_id)
    return image_response(record, data)


class ZipRequest(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=ZIP_MAX_JOBS, description="Job ids.")


@router.post(
    "/results.zip",
    response_class=StreamingResponse,
    summary="The results of several jobs, as one zip",
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "Every result still kept, named after its input (`photo.png`, "
            "`photo (2).png`, ...); header Cutout-Skipped: how many ids had none.",
        },
        404: {"description": "None of the jobs has a result."},
    },
)
async def results_zip(body: ZipRequest, gw: GatewayDep) -> StreamingResponse:
    archive, skipped = await run_in_threadpool(build_zip, gw.status, body.ids)
    if archive is None:
        raise ApiError(404, "none of these jobs has a result (not done, failed or expired)")
    return StreamingResponse(
        chunks(archive),
        media_type="application/zip",
        headers={
            "Content-Disposition": disposition("attachment", "cutouts.zip"),
            "Cutout-Skipped": str(skipped),
        },
    )


# --- the page's questions ----------------------------------------------------------------


@router.get("/options", summary="The options a job may set, as the page shows them")
async def options(gw: GatewayDep) -> list[dict[str, Any]]:
    """Name, type, help, limits, choices, and this gateway's setting for each."""
    return [
        {
            "name": o.name,
            "type": o.type.__name__,
            "help": o.help,
            "choices": list(o.choices),
            "min": o.ge if o.ge is not None else o.gt,
            "max": o.le,
            "default": gw.option_defaults.get(o.name),
        }
        for o in JOB_OPTIONS
    ]


@operations.get("/metrics")
async def metrics(gw: GatewayDep) -> Response:
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)
