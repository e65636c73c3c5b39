"""`cutout health`: is the service able to take and finish jobs right now?"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

import click
import redis

from cutout_cli.common import EXIT_FAILED, EXIT_OK, get_settings
from settings import Settings
from settings.config import mask_url
from worker import redisio
from worker.presence import Presence


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def ping(url: str) -> tuple[bool, str]:
    try:
        with redisio.client(url, redisio.CHECK) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        return False, f"{mask_url(url)}: {exc}"
    return True, mask_url(url)


def still_running(record: dict[str, Any]) -> bool:
    """False for the heartbeat of a process on this machine that is gone (killed before its
    record expired, up to 30 s later); records from other machines are taken as they are."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)  # signal 0: is there such a process?
    except ProcessLookupError:
        return False
    except PermissionError:  # there is, under another user
        return True
    return True


def worker_checks(workers: list[dict[str, Any]], host: str | None) -> list[Check]:
    if host:
        workers = [w for w in workers if host in str(w.get("hostname", ""))]
    if not workers:
        where = f" named like {host!r}" if host else ""
        return [Check("worker", False, f"no live worker{where} with its model loaded")]
    checks = []
    for w in workers:
        providers = ", ".join(w.get("providers", []))
        precision = w.get("precision", "fp32")
        runs_at = f" ({w['runs_at']})" if w.get("runs_at") not in (None, precision) else ""
        detail = (
            f"{w.get('hostname')} pid {w.get('pid')}: {w.get('model')} on {providers}, "
            f"precision {precision}{runs_at}"
        )
        if w.get("fell_back"):
            # A "GPU" worker silently running on CPU is the failure rembg users chase for
            # years: report it as unhealthy, not as a footnote.
            asked = ", ".join(w.get("requested", []))
            checks.append(Check("worker", False, f"{detail} (asked for {asked}: fell back)"))
        else:
            checks.append(Check("worker", True, detail))
    return checks


def watcher_checks(watchers: list[dict[str, Any]], required: bool) -> list[Check]:
    if not watchers:
        return [Check("watcher", False, "no watcher heartbeat", required)]
    return [
        Check(
            "watcher",
            True,
            f"{w.get('name')}: {w.get('inbox')}, {w.get('pending')} settling, "
            f"{w.get('in_flight')} in flight, beat {time.time() - w.get('time', 0):.0f} s ago",
            required,
        )
        for w in watchers
    ]


def gateway_checks(gateways: list[dict[str, Any]], required: bool) -> list[Check]:
    """Listed when there are some, or when one is required: most services run none."""
    if not gateways:
        return [Check("gateway", False, "no gateway heartbeat", required)] if required else []
    return [
        Check(
            "gateway",
            True,
            f"{g.get('host')} pid {g.get('pid')}: {g.get('url')} "
            f"({'token asked' if g.get('auth') else 'no token'}), "
            f"beat {time.time() - g.get('time', 0):.0f} s ago",
            required,
        )
        for g in gateways
    ]


def run_checks(
    settings: Settings,
    *,
    worker_host: str | None,
    need_watcher: bool,
    need_worker: bool,
    need_gateway: bool = False,
) -> list[Check]:
    broker_ok, broker = ping(settings.broker_url)
    checks = [Check("broker", broker_ok, broker)]
    backend_ok, backend = ping(settings.status_url)
    checks.append(Check("result backend", backend_ok, backend))
    if not backend_ok:
        return checks
    with redisio.client(settings.status_url, redisio.CHECK) as client:
        presence = Presence(client, prefix=settings.key_prefix)
        alive = [w for w in presence.alive("worker") if still_running(w)]
        workers = worker_checks(alive, worker_host)
        for check in workers:
            check.required = need_worker
        checks += workers
        checks += watcher_checks(presence.alive("watcher"), need_watcher)
        gateways = [g for g in presence.alive("gateway") if still_running(g)]
        checks += gateway_checks(gateways, need_gateway)
    return checks


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--worker-host", help="Require a live worker whose name contains this text.")
@click.option("--watcher", "need_watcher", is_flag=True, help="Require a watcher heartbeat.")
@click.option("--gateway", "need_gateway", is_flag=True, help="Require an HTTP gateway heartbeat.")
@click.option("--no-worker", is_flag=True, help="Do not require a worker (e.g. for the watcher).")
@click.pass_context
def health_command(
    ctx: click.Context,
    /,
    *,
    as_json: bool,
    worker_host: str | None,
    need_watcher: bool,
    need_gateway: bool,
    no_worker: bool,
) -> None:
    """Check Redis, a live worker with its model and provider, and the heartbeats of the
    watcher and of the HTTP gateways.

    Exit 0 when every required check passes, else 1.
    """
    settings = get_settings(ctx)
    checks = run_checks(
        settings,
        worker_host=worker_host,
        need_watcher=need_watcher,
        need_worker=not no_worker,
        need_gateway=need_gateway,
    )
    healthy = all(c.ok for c in checks if c.required)
    if as_json:
        click.echo(
            json.dumps({"healthy": healthy, "checks": [asdict(c) for c in checks]}, indent=2)
        )
    else:
        for c in checks:
            mark = click.style("ok  ", fg="green") if c.ok else click.style("FAIL", fg="red")
            note = "" if c.required or c.ok else " (not required)"
            click.echo(f"{mark} {c.name:<15} {c.detail}{note}")
    ctx.exit(EXIT_OK if healthy else EXIT_FAILED)
