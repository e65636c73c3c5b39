"""The `cutout.remove` task payload and the job status record.

Both are plain JSON: other applications build the payload by hand (`send_task`) and read
the record from Redis, so every field here is part of the contract documented in README.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cutout.errors import CutoutError
from cutout.models import MODELS
from cutout.options import JOB_OPTIONS, Precision, RefineMode, option, parse_background

TASK_NAME = "cutout.remove"
# A failed job's `error_kind`: the image or the request was at fault (the first five; the
# sender may fix it), or the service was (the rest; sending it again later may work).
ERROR_KINDS = (
    "image",
    "job",
    "output",
    "invalid",
    "poison",
    "timeout",
    "model",
    "transient",
    "unsent",
)
SENDER_ERRORS = frozenset(ERROR_KINDS[:5])
State = Literal["queued", "started", "retrying", "succeeded", "failed"]
STATES: tuple[State, ...] = ("queued", "started", "retrying", "succeeded", "failed")
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed"})
MAX_PATH_CHARS = 4096
INPUT_NAME_MAX = MAX_PATH_CHARS  # a path in the inbox, however deep, is named in full


def _option(name: str) -> Any:
    """A payload field that is a removal option: its help and limits are the option's."""
    opt = option(name)
    return Field(None, description=opt.help, **opt.bounds)


class JobError(CutoutError):
    """A job that can never succeed as given (bad payload, refused path); never retried."""


class RemoveJob(BaseModel):
    """Keyword arguments of `cutout.remove`. Exactly one of input_path / input_data.

    Relative paths are taken from the inbox (input) and the outbox (output). Without
    output_path, a file under the inbox goes to the mirrored place in the outbox, and an
    inline image is returned as bytes.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    input_path: str | None = Field(None, min_length=1, max_length=MAX_PATH_CHARS)
    input_data: str | None = Field(None, description="The image, base64-encoded.")
    input_name: str | None = Field(
        None, max_length=INPUT_NAME_MAX, description="Name used in messages."
    )
    output_path: str | None = Field(None, min_length=1, max_length=MAX_PATH_CHARS)
    return_bytes: bool = False
    overwrite: bool = Field(
        False, description="Replace a file already at the output path (else the job fails)."
    )
    # The removal options (cutout.options; None: the worker's setting).
    model: str | None = _option("model")
    precision: Precision | None = _option("precision")
    background: str | None = _option("background")
    format: Literal["png", "webp", "jpg", "jpeg"] | None = _option("format")
    only_mask: bool | None = _option("only_mask")
    crop: bool | None = _option("crop")
    crop_margin: int | None = _option("crop_margin")
    refine: RefineMode | None = _option("refine")
    matting_fg_threshold: int | None = _option("matting_fg_threshold")
    matting_bg_threshold: int | None = _option("matting_bg_threshold")
    matting_erode_size: int | None = _option("matting_erode_size")
    post_process_mask: bool | None = _option("post_process_mask")
    decontaminate: bool | None = _option("decontaminate")
    exact_colours: bool | None = _option("exact_colours")
    blur_radius: float | None = _option("blur_radius")
    png_compress_level: int | None = _option("png_compress_level")
    webp_quality: int | None = _option("webp_quality")
    jpeg_quality: int | None = _option("jpeg_quality")

    @field_validator("input_path", "output_path", "input_name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains a NUL character")
        return value

    @field_validator("input_data")
    @classmethod
    def _base64(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        limit = (info.context or {}).get("inline_max_bytes")
        # 4 base64 characters carry 3 bytes: refuse before decoding anything big.
        if limit is not None and len(value) * 3 // 4 > limit:
            raise ValueError(f"inline image larger than the limit of {limit} bytes")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"not valid base64 ({exc})") from exc
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and value not in MODELS:
            raise ValueError(f"unknown model {value!r}; known: {', '.join(MODELS)}")
        return value

    @field_validator("background")
    @classmethod
    def _background(cls, value: str | None) -> str | None:
        if value is not None:
            parse_background(value, local=False)  # its file is the worker's to find
        return value

    @model_validator(mode="after")
    def _one_input(self) -> RemoveJob:
        if (self.input_path is None) == (self.input_data is None):
            raise ValueError("give exactly one of input_path and input_data")
        return self

    def options(self) -> dict[str, Any]:
        """The removal options this job sets, by their flat names."""
        values = {o.name: getattr(self, o.name) for o in JOB_OPTIONS}
        return {name: value for name, value in values.items() if value is not None}

    @property
    def image_bytes(self) -> bytes | None:
        return base64.b64decode(self.input_data) if self.input_data is not None else None

    @property
    def label(self) -> str:
        """How the input is named in status records and messages: the name given, else the
        path (the watcher names a claimed file by its path in the inbox, not the claim's)."""
        return self.input_name or self.input_path or "<inline image>"


def parse_job(kwargs: dict[str, Any], *, inline_max_bytes: int) -> RemoveJob:
    """Validate task kwargs; any problem is a JobError listing each bad field."""
    from pydantic import ValidationError

    try:
        return RemoveJob.model_validate(kwargs, context={"inline_max_bytes": inline_max_bytes})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
            for err in exc.errors()
        )
        raise JobError(f"invalid job: {problems}") from None


class JobRecord(BaseModel):
    """A job's status as stored in Redis and printed by `cutout status --json`."""

    id: str
    state: State
    input: str | None = None
    output: str | None = None
    model: str | None = None
    error: str | None = None
    error_kind: str | None = Field(
        None,
        description="Why a failed job failed, one of ERROR_KINDS (the metric's reason label).",
    )
    worker: str | None = None
    attempts: int = 0
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    duration: float | None = Field(None, description="Seconds of processing, last attempt.")
    has_bytes: bool = Field(False, description="The result is kept in Redis as bytes.")

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES
