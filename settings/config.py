"""The Settings class. Built only at the edges (CLI, Celery app, watcher main); values are
passed down as arguments, so library code never reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cutout.errors import ConfigError, CutoutError
from cutout.models import MODELS
from cutout.specs import BACKGROUND_HELP, FORMATS, parse_background, parse_format

ENV_PREFIX = "CUTOUT_"
PROVIDER_HELP = "auto, or a comma-separated list such as CUDAExecutionProvider,CPUExecutionProvider"


def default_model_home() -> Path:
    """rembg's cache folder, so that models a rembg user already downloaded are reused."""
    return Path(os.environ.get("U2NET_HOME") or "~/.u2net").expanduser()


class SettingsError(ConfigError):
    """One or more settings are invalid; the message names each variable."""


class Settings(BaseSettings):
    """Every setting of cutout. Environment variable: `CUTOUT_<FIELD NAME IN CAPITALS>`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        protected_namespaces=(),
    )

    # --- model ---
    model: str = Field("u2net", description=f"Model name; one of {', '.join(MODELS)}.")
    model_home: Path = Field(
        default_factory=default_model_home,
        description="Folder of model files. Default: $U2NET_HOME, else ~/.u2net (rembg's cache).",
    )
    model_path: Path | None = Field(
        None,
        description="Your own ONNX file, used as given (never verified nor overwritten); "
        "CUTOUT_MODEL then names its family's preprocessing.",
    )
    model_auto_pull: bool = Field(
        True, description="Fetch a missing model on first use (else fail with instructions)."
    )
    model_mirror: str | None = Field(
        None,
        description="Base URL of a mirror holding the model files by name, tried before the "
        "canonical release URL.",
    )
    # --- inference ---
    providers: str = Field(
        "auto",
        description="ONNX Runtime execution providers: auto (CUDA when available, else CPU) "
        "or a comma-separated list.",
    )
    threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads per process; 0 = cores / processes."
    )
    # --- images ---
    max_pixels: int = Field(
        80_000_000, gt=0, description="Largest input (width x height) decoded; checked first."
    )
    background: str = Field("transparent", description=f"Background: {BACKGROUND_HELP}.")
    blur_radius: float = Field(
        20.0, gt=0, description="Gaussian radius (px) of the blur background."
    )
    only_mask: bool = Field(False, description="Output the mask instead of the cut-out.")
    crop: bool = Field(False, description="Crop the output to the subject's bounding box.")
    crop_margin: int = Field(10, ge=0, description="Margin (px) kept around the subject on crop.")
    refine: Literal["none"] = Field(
        "none", description="Edge refinement; none gives exactly rembg's mask."
    )
    post_process_mask: bool = Field(
        False, description="rembg's post-processing (morphological opening + blur + threshold)."
    )
    output_format: str = Field("png", description=f"Output format: {', '.join(FORMATS)}.")
    png_compress_level: int = Field(
        3, ge=0, le=9, description="zlib level of PNG outputs (0 fastest ... 9 smallest)."
    )
    webp_quality: int = Field(
        90, ge=1, le=100, description="Quality of opaque WebP outputs; with alpha WebP is lossless."
    )
    jpeg_quality: int = Field(92, ge=1, le=100, description="Quality of JPEG outputs.")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; accepted: {', '.join(MODELS)}")
        return value

    @field_validator("model_home", "model_path", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("background")
    @classmethod
    def _background(cls, value: str) -> str:
        parse_background(value)
        return value

    @field_validator("output_format")
    @classmethod
    def _format(cls, value: str) -> str:
        return parse_format(value)

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        names = [p.strip() for p in value.split(",") if p.strip()]
        if not names:
            raise ValueError(f"empty; accepted: {PROVIDER_HELP}")
        if "auto" in names and len(names) > 1:
            raise ValueError(f"auto cannot be combined with others; accepted: {PROVIDER_HELP}")
        return ",".join(names)

    @property
    def provider_list(self) -> list[str] | None:
        """The providers asked for, or None for the automatic choice."""
        return None if self.providers == "auto" else self.providers.split(",")


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation errors into one message naming each variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            cause = err.get("ctx", {}).get("error")
            reason = str(cause) if isinstance(cause, CutoutError | ValueError) else err["msg"]
            value = err.get("input")
            lines.append(f"{env_name(field)}={value!r}: {reason}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
