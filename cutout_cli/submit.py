"""`cutout submit FILE...`: enqueue images from another shell or host."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from cutout.images import write_atomic
from cutout.options import JOB_OPTIONS
from cutout_cli.common import EXIT_FAILED, get_settings, redis_errors, reporting
from cutout_cli.options import collect, job_options
from settings import Settings
from worker.naming import output_name, write_new


def under_roots(path: Path, settings: Settings) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(root)) for root in settings.roots)


@click.command("submit")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--wait", "wait_", is_flag=True, help="Wait for each job and report its outcome.")
@click.option("--json", "as_json", is_flag=True, help="Print job records as JSON lines.")
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="Seconds to wait per job."
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where results of files sent inline are written with --wait (default: the outbox).",
)
@job_options
@click.option(
    "--overwrite",
    is_flag=True,
    default=None,
    help="Replace a file already at a job's output path (else that job fails).",
)
@click.pass_context
def submit_command(
    ctx: click.Context,
    /,
    *,
    files: tuple[Path, ...],
    wait_: bool,
    as_json: bool,
    timeout: float,
    output_dir: Path | None,
    **options: Any,
) -> None:
    """Enqueue FILES as cutout.remove jobs and print their ids.

    A file under the service's folders is sent by path; any other file is sent inline
    (base64) and, with --wait, its result is written to --output-dir under a free name
    (photo.png, else photo (2).png, ...): never over an earlier result.
    """
    settings = get_settings(ctx)
    from worker.client import Client

    opts = collect(options, JOB_OPTIONS)
    if options.pop("overwrite"):
        opts["overwrite"] = True
    failed = 0
    backend = settings.result_backend or settings.broker_url
    with (
        reporting(ctx),
        redis_errors(ctx, backend, settings.broker_url),
        Client.from_settings(settings) as client,
    ):
        jobs = [(f, _submit(client, f, settings, opts)) for f in files]
        for file, job_id in jobs:
            if not wait_:
                _print(as_json, {"id": job_id, "state": "queued", "input": str(file)}, job_id)
                continue
            result = client.wait(job_id, timeout)
            record = result.record
            if result.data is not None:
                folder = output_dir or settings.outbox
                target = _write_inline(file, result.data, folder, _format(opts, settings))
                record = record.model_copy(update={"output": str(target)})
            failed += record.state == "failed"
            line = f"{job_id}  {record.state}  {record.output or record.error or ''}"
            _print(as_json, record.model_dump(mode="json"), line)
    if failed:
        ctx.exit(EXIT_FAILED)


def _submit(client: Any, file: Path, settings: Settings, opts: dict[str, Any]) -> str:
    if under_roots(file, settings):
        return str(client.submit(file.resolve(), **opts))
    return str(client.submit_bytes(file.read_bytes(), name=file.name, **opts))


def _format(opts: dict[str, Any], settings: Settings) -> str:
    return {"jpeg": "jpg"}.get(opts.get("format", ""), opts.get("format") or settings.output_format)


def _write_inline(file: Path, data: bytes, folder: Path, fmt: str) -> Path:
    """The result of a file sent inline, under the first free name in `folder` (`photo.png`,
    `photo (2).png`, ...): an earlier result, or any other file, is never replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_new(
        folder,
        output_name(file.name, fmt),
        lambda target: write_atomic(target, data, like=file, replace=False),
    )


def _print(as_json: bool, record: dict[str, Any], line: str) -> None:
    click.echo(json.dumps(record) if as_json else line)
