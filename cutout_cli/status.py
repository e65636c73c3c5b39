"""`cutout status`: recent jobs, one job, or changes as they happen (records in Redis)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import cast

import click

from cutout_cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    fail,
    get_settings,
    redis_errors,
)
from worker.jobs import STATES, JobRecord, State
from worker.status import StatusStore

SHORT_ID = 8
PATH_WIDTH = 40
ERROR_WIDTH = 60
HEADER = ("ID", "STATE", "INPUT", "OUTPUT", "DURATION", "AGE", "ERROR")
COLOURS = {"succeeded": "green", "failed": "red", "retrying": "yellow", "started": "cyan"}
STATE_WIDTH = max(len(s) for s in STATES)


@click.command(name="status")
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON: a list, an object, or one per line.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print each change as it happens; with JOB_ID stop when the job ends.",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Jobs listed, newest first.",
)
@click.option(
    "--state",
    "state_filter",
    type=click.Choice(STATES),
    help="Only jobs (or, with --follow, changes) in this state.",
)
@click.pass_context
def status(
    ctx: click.Context,
    *,
    job_id: str | None,
    as_json: bool,
    follow: bool,
    limit: int,
    state_filter: str | None,
) -> None:
    """Show recent jobs, one job (JOB_ID, or its first characters), or follow changes.

    Exit codes: 0 ok; 1 no such job, or the followed job failed; 3 Redis unreachable.
    """
    settings = get_settings(ctx)
    url = settings.status_url
    with (
        redis_errors(ctx, url),
        StatusStore.from_url(
            url, prefix=settings.key_prefix, ttl=settings.status_ttl, result_ttl=settings.result_ttl
        ) as store,
    ):
        if job_id is not None:
            full_id = resolve(store, job_id)
            code = (
                follow_job(store, full_id, as_json) if follow else show_job(store, full_id, as_json)
            )
        elif follow:
            code = follow_all(store, as_json, state_filter)
        else:
            show_recent(store.recent(limit, cast("State | None", state_filter)), as_json)
            code = EXIT_OK
    ctx.exit(code)


def resolve(store: StatusStore, job_id: str) -> str:
    """The full id of JOB_ID, which may be the short id the table shows."""
    if store.get(job_id) is not None:
        return job_id
    matches = store.find(job_id, limit=5)
    if len(matches) == 1:
        return matches[0]
    if matches:
        fail(f"job id {job_id} is ambiguous: {', '.join(matches)}", EXIT_FAILED)
    fail(f"no job {job_id} (unknown, or expired after {store.ttl} s)", EXIT_FAILED)


# --- the three views ---


def show_recent(records: list[JobRecord], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
    elif records:
        click.echo(table(records, _now()))
    else:
        click.echo("no jobs", err=True)


def show_job(store: StatusStore, job_id: str, as_json: bool) -> int:
    record = store.get(job_id)
    if record is None:  # expired since resolve()
        fail(f"no job {job_id} (unknown, or expired after {store.ttl} s)", EXIT_FAILED)
    click.echo(
        json.dumps(record.model_dump(mode="json"), indent=2) if as_json else table([record], _now())
    )
    return EXIT_OK


def follow_job(store: StatusStore, job_id: str, as_json: bool) -> int:
    """Print the job's state, then each change; the exit code says how it ended."""
    changes = store.follow(job_id)  # positioned first, so nothing is missed after get()
    record = store.get(job_id)
    if record is None:
        fail(f"no job {job_id} (unknown, or expired after {store.ttl} s)", EXIT_FAILED)
    echo_change(record, as_json)
    if not record.done:
        for record in changes:
            echo_change(record, as_json)
    return EXIT_OK if record.state == "succeeded" else EXIT_FAILED


def follow_all(store: StatusStore, as_json: bool, state_filter: str | None) -> int:
    try:
        for record in store.follow():
            if state_filter in (None, record.state):
                echo_change(record, as_json)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops following everything: not a failure
    return EXIT_OK


# --- formatting ---


def table(records: Iterable[JobRecord], now: datetime) -> str:
    rows = [HEADER, *(cells(r, now) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for number, row in enumerate(rows):
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        if number:  # styled after padding: colour codes have no width on screen
            padded[1] = click.style(padded[1], fg=COLOURS.get(row[1]))
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def cells(record: JobRecord, now: datetime) -> tuple[str, ...]:
    return (
        record.id[:SHORT_ID],
        record.state,
        tail(record.input or "-", PATH_WIDTH),
        tail(record.output or "-", PATH_WIDTH),
        duration(record.duration),
        age(record.created, now),
        head(record.error or "", ERROR_WIDTH),
    )


def echo_change(record: JobRecord, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record.model_dump(mode="json")))
        return
    when = datetime.now().strftime("%H:%M:%S")
    state_cell = click.style(record.state.ljust(STATE_WIDTH), fg=COLOURS.get(record.state))
    paths = f"{tail(record.input or '-', PATH_WIDTH)} -> {tail(record.output or '-', PATH_WIDTH)}"
    parts = [when, record.id[:SHORT_ID], state_cell, paths]
    parts += [duration(record.duration)] if record.duration is not None else []
    parts += [head(record.error, ERROR_WIDTH)] if record.error else []
    click.echo("  ".join(parts))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:.0f} s"


def age(created: datetime | None, now: datetime) -> str:
    if created is None:
        return "-"
    seconds = max(0, int((now - created).total_seconds()))  # clocks of hosts may disagree
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def tail(text: str, width: int) -> str:
    """The end of a path, which names the file, rather than its start."""
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def head(text: str, width: int) -> str:
    """The first line of a message, cut to width; " ..." says that more lines follow."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > width:
        return first[: width - 3] + "..."
    return first + (" ..." if len(lines) > 1 else "")


def _now() -> datetime:
    return datetime.now(timezone.utc)
