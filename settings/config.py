"""The Settings class. Built only at the edges (CLI, Celery app, watcher main); values are
passed down as arguments, so library code never reads the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from cutout.errors import ConfigError, CutoutError
from cutout.models import FAMILIES, MODELS, default_home
from cutout.options import Precision, RefineMode, option, parse_background, parse_format

ENV_PREFIX = "CUTOUT_"
PROVIDER_HELP = "auto, or a comma-separated list such as CUDAExecutionProvider,CPUExecutionProvider"
REDIS_URL_HELP = "redis://[:password@]host:port/db, rediss://... (TLS) or unix:///path/to/socket"
# No ":" (the separator of key names) nor glob characters (the prefix is part of SCAN patterns).
KEY_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
KEY_PREFIX_HELP = "1 to 64 characters among ASCII letters, digits, _ . and -"
# What an error message about settings may never show as given.
SECRET_FIELDS = frozenset({"flower_password", "http_token", "http_tokens"})
HTTP_TOKEN_MIN_CHARS = 16
# .env.example's stand-in for docker compose: a gateway never runs with it.
TOKEN_PLACEHOLDER = "change-me"
URL_FIELDS = frozenset({"broker_url", "result_backend"})


def _option(name: str) -> Any:
    """A setting that is a removal option: its default, help and limits are the option's
    (cutout.options); only its type is spelled here, for the type checker."""
    opt = option(name)
    return Field(opt.default, description=opt.help, **opt.bounds)


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
    model: str = _option("model")
    precision: Precision = _option("precision")
    model_home: Path = Field(
        default_factory=default_home,
        description="Folder of model files. Default: $U2NET_HOME, else ~/.u2net (rembg's cache).",
    )
    model_path: Path | None = Field(
        None,
        description="Your own ONNX file, used as given (never verified nor overwritten) in "
        "place of CUTOUT_MODEL's file; CUTOUT_MODEL_FAMILY says how to feed it.",
    )
    model_family: str | None = Field(
        None,
        description=f"The family of CUTOUT_MODEL_PATH's file: {', '.join(FAMILIES)}; "
        "default: CUTOUT_MODEL's (and its preprocessing).",
    )
    job_models: str = Field(
        "",
        description="Models a job may name besides CUTOUT_MODEL (comma-separated registry "
        "names); a job never names a file.",
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
    max_pixels: int = _option("max_pixels")
    background: str = _option("background")
    blur_radius: float = _option("blur_radius")
    only_mask: bool = _option("only_mask")
    crop: bool = _option("crop")
    crop_margin: int = _option("crop_margin")
    refine: RefineMode = _option("refine")
    matting_fg_threshold: int = _option("matting_fg_threshold")
    matting_bg_threshold: int = _option("matting_bg_threshold")
    matting_erode_size: int = _option("matting_erode_size")
    post_process_mask: bool = _option("post_process_mask")
    decontaminate: bool = _option("decontaminate")
    exact_colours: bool = _option("exact_colours")
    output_format: str = _option("format")
    png_compress_level: int = _option("png_compress_level")
    webp_quality: int = _option("webp_quality")
    jpeg_quality: int = _option("jpeg_quality")

    # --- queue ---
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Celery broker: redis:// or rediss:// (TLS) URL, password included.",
    )
    result_backend: str | None = Field(
        None, description="Celery result backend and job status store; default: the broker."
    )
    redis_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) that a rediss:// Redis's certificate must chain to, "
        "besides the system's; for a private CA.",
    )
    queue: str = Field("cutout", min_length=1, description="Name of the Celery queue.")
    concurrency: int = Field(
        0,
        ge=0,
        description="Worker processes per `cutout worker`; 0 = one per two cores, at least two.",
    )
    task_soft_time_limit: int = Field(
        120, gt=0, description="Seconds before a job is asked to stop (it then fails)."
    )
    task_time_limit: int = Field(
        180, gt=0, description="Seconds before a job's process is killed (hard limit)."
    )
    max_memory_per_child_mb: int = Field(
        1500,
        ge=0,
        description="A worker process using more memory (MB) is replaced after its job; 0: never.",
    )
    max_retries: int = Field(
        3, ge=0, description="Retries of a job after a transient error (I/O, Redis)."
    )
    retry_backoff: float = Field(
        2.0, gt=0, description="Seconds before the first retry; doubled each time."
    )
    max_deliveries: int = Field(
        3,
        ge=1,
        description="Deliveries after which a job whose worker died (a poison image) fails.",
    )
    inline_max_bytes: int = Field(
        25_000_000, gt=0, description="Largest image accepted inline (base64) in a job."
    )
    status_ttl: int = Field(
        7 * 24 * 3600, gt=0, description="Seconds a job's status record is kept in Redis."
    )
    result_ttl: int = Field(
        3600, gt=0, description="Seconds a result returned as bytes is kept in Redis."
    )
    key_prefix: str = Field(
        "cutout",
        description="Prefix of every Redis key of this deployment (job records, events, "
        "heartbeats, reservations); give each deployment sharing a Redis its own.",
    )
    # --- folders ---
    inbox: Path = Field(Path("inbox"), description="Folder of inputs (the watch folder).")
    outbox: Path = Field(Path("outbox"), description="Folder of outputs.")
    failed_dir: Path = Field(Path("failed"), description="Failed inputs and their .error.json.")
    done_dir: Path = Field(Path("done"), description="Inputs moved here once processed.")
    allowed_roots: str = Field(
        "",
        description="Other folders (comma-separated) a job may read from and write to, "
        "besides the inbox, outbox, failed and done folders.",
    )
    # --- watch folder ---
    watch_mode: Literal["auto", "native", "polling"] = Field(
        "auto",
        description="How the watcher sees new files: native (inotify and the like), polling "
        "(for NFS/SMB shares and Docker bind mounts, where events do not arrive), or auto "
        "(polling on network file systems, else native).",
    )
    settle_seconds: float = Field(
        2.0,
        ge=0,
        description="A file is taken once its size and mtime are this long unchanged (at "
        "once if its writer closed it and its bytes end as its format says).",
    )
    rescan_seconds: float = Field(
        30.0, gt=0, description="Seconds between full rescans that catch missed events."
    )
    poll_seconds: float = Field(1.0, gt=0, description="Polling interval of the polling mode.")
    on_success: Literal["move", "delete", "keep"] = Field(
        "move",
        description="What happens to an input once done: moved to the done folder, deleted, "
        "or kept in place (a ledger then stops it being processed again).",
    )
    max_pending: int = Field(
        500, ge=1, description="Jobs in flight above which the watcher stops taking new files."
    )
    state_dir: Path = Field(
        Path(".cutout"), description="Where `cutout up` keeps its private Redis (AOF) and state."
    )
    # --- metrics ---
    metrics_address: str = Field(
        "127.0.0.1", description="Address of the Prometheus endpoints (0.0.0.0 in containers)."
    )
    worker_metrics_port: int = Field(
        9808, ge=0, le=65535, description="Port of a worker's /metrics; 0 turns it off."
    )
    watcher_metrics_port: int = Field(
        9809, ge=0, le=65535, description="Port of the watcher's /metrics; 0 turns it off."
    )
    # --- flower ---
    flower_address: str = Field("127.0.0.1", description="Address Flower listens on.")
    flower_port: int = Field(5555, ge=1, le=65535, description="Port of Flower.")
    flower_user: str = Field("admin", min_length=1, description="Flower basic-auth user.")
    flower_password: SecretStr | None = Field(
        None, description="Flower basic-auth password; Flower refuses to start without one."
    )
    # --- HTTP gateway ---
    http_address: str = Field(
        "127.0.0.1",
        description="Address the HTTP gateway listens on; beyond loopback it needs a token.",
    )
    http_port: int = Field(7000, ge=1, le=65535, description="Port of the HTTP gateway.")
    http_token: SecretStr | None = Field(
        None, description="Bearer token the HTTP gateway asks of every API call."
    )
    http_tokens: SecretStr | None = Field(
        None,
        description="Several bearer tokens, comma-separated (one per app), accepted besides "
        "CUTOUT_HTTP_TOKEN.",
    )
    http_wait_seconds: float = Field(
        60.0,
        gt=0,
        description="Seconds POST /api/remove waits for its job before answering 504 with the "
        "job's id.",
    )
    http_cors_origins: str = Field(
        "",
        description="Web origins (comma-separated, or *) whose pages may call the gateway "
        "from a browser; none by default.",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; accepted: {', '.join(MODELS)}")
        return value

    @field_validator("model_family")
    @classmethod
    def _known_family(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if value not in FAMILIES:
            raise ValueError(f"unknown model family {value!r}; accepted: {', '.join(FAMILIES)}")
        if info.data.get("model_path") is None:
            raise ValueError("says how to feed your own file: set CUTOUT_MODEL_PATH too")
        return value

    @field_validator("job_models")
    @classmethod
    def _job_models(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; accepted: {', '.join(MODELS)}")
        return ",".join(dict.fromkeys(names))

    @field_validator("model_home", "model_path", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("inbox", "outbox", "failed_dir", "done_dir", "state_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, at the edge, so every process agrees whatever its working folder.
        return value.expanduser().resolve()

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"not a Redis URL; accepted: {REDIS_URL_HELP}")
        try:
            urlsplit(value).port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError(f"the port is not a number; accepted: {REDIS_URL_HELP}") from None
        return value

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if not KEY_PREFIX_PATTERN.fullmatch(value):
            raise ValueError(f"not a key prefix; accepted: {KEY_PREFIX_HELP}")
        return value

    @field_validator("redis_ca_file", mode="after")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        urls = (info.data.get("broker_url") or "", info.data.get("result_backend") or "")
        if not any(url.startswith("rediss://") for url in urls):
            raise ValueError("set, but no Redis URL uses rediss:// (TLS)")
        value = value.expanduser().resolve()
        if not value.is_file():
            raise ValueError("no such file")
        return value

    @model_validator(mode="after")
    def _verified_tls(self) -> Settings:
        # Assigned only when changed: model_fields_set tells a configured URL from the default.
        for name in ("broker_url", "result_backend"):
            url = getattr(self, name)
            verified = url and verified_tls_url(url, self.redis_ca_file)
            if verified != url:
                setattr(self, name, verified)
        return self

    @field_validator("http_token", "http_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr | None) -> SecretStr | None:
        tokens = [] if value is None else value.get_secret_value().split(",")
        tokens = [token.strip() for token in tokens if token.strip()]
        for token in tokens:
            _check_token(token)
        return value if tokens else None  # set but empty (`CUTOUT_HTTP_TOKEN=`): none

    @field_validator("allowed_roots")
    @classmethod
    def _roots(cls, value: str) -> str:
        roots = [r.strip() for r in value.split(",") if r.strip()]
        return ",".join(str(Path(r).expanduser().resolve()) for r in roots)

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
    def http_token_list(self) -> list[str]:
        """Every bearer token the gateway accepts; empty: none is asked for."""
        given = [self.http_token, self.http_tokens]
        text = ",".join(secret.get_secret_value() for secret in given if secret is not None)
        return [token.strip() for token in text.split(",") if token.strip()]

    @property
    def status_url(self) -> str:
        """The Redis that holds job records and events: the result backend's."""
        return self.result_backend or self.broker_url

    @property
    def roots(self) -> list[Path]:
        """Every folder a job's paths may point into."""
        extra = [Path(r) for r in self.allowed_roots.split(",") if r]
        return [self.inbox, self.outbox, self.failed_dir, self.done_dir, *extra]

    @property
    def offered_models(self) -> list[str]:
        """The models a job may name: CUTOUT_MODEL (your own file, with CUTOUT_MODEL_PATH)
        first, then CUTOUT_JOB_MODELS."""
        extra = [name for name in self.job_models.split(",") if name]
        return list(dict.fromkeys([self.model, *extra]))

    @property
    def provider_list(self) -> list[str] | None:
        """The providers asked for, or None for the automatic choice."""
        return None if self.providers == "auto" else self.providers.split(",")


def _check_token(token: str) -> None:
    hint = "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if token.lower().startswith(TOKEN_PLACEHOLDER):
        raise ValueError(f"still the placeholder of .env.example; choose a secret ({hint})")
    if len(token) < HTTP_TOKEN_MIN_CHARS or not token.isprintable() or " " in token:
        raise ValueError(
            f"a token is at least {HTTP_TOKEN_MIN_CHARS} printable characters without "
            f"spaces ({hint})"
        )


def verified_tls_url(url: str, ca_file: Path | None) -> str:
    """A rediss:// URL that checks the server's certificate (against ca_file when given).

    Celery's broker (kombu) connects *without* checking it when a rediss:// URL says
    nothing (ssl_cert_reqs); redis-py and Celery's result backend would check, or refuse.
    What the URL says itself wins.
    """
    if not url.startswith("rediss://"):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = {name for name, _ in query}
    if "ssl_cert_reqs" not in names:
        query.append(("ssl_cert_reqs", "required"))
    if ca_file is not None and "ssl_ca_certs" not in names:
        query.append(("ssl_ca_certs", str(ca_file)))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, in the user part or the query."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        # A lone userinfo may be a password too (redis://secret@host): hide it all.
        userinfo = f"{user}:***" if colon else "***"
    query = urlencode(
        [
            (name, "***" if name == "password" else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*/",
    )
    # Built by hand: urlunsplit drops the "//" of unix:///path.
    masked = f"{parts.scheme}://{userinfo}{at}{host}{parts.path}"
    return (
        masked + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    )


def shown(field: str, value: object) -> str:
    """A setting's value as an error may show it: never a secret."""
    if field in SECRET_FIELDS:
        return "'***'"
    if field in URL_FIELDS and isinstance(value, str):
        return repr(mask_url(value))
    return repr(value)


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
            lines.append(f"{env_name(field)}={shown(field, err.get('input'))}: {reason}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
