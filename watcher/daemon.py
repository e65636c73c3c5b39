"""The watcher's loop: detect -> settle -> claim -> enqueue, and the outcome of each job.

Start-up order matters (no file may slip between the cracks): observe first, then scan
what is already there, then reconcile the claims left by an earlier run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import redis
from kombu.exceptions import OperationalError

from watcher.claims import ERROR_SUFFIX, Claim, Claims, InboxRefused, write_error
from watcher.detect import Seen, scan, start_observer
from watcher.ledger import Ledger
from watcher.metrics import WatcherMetrics
from watcher.rules import LEDGER
from watcher.settle import Hint, Settler, open_for_writing
from worker.client import Client
from worker.jobs import INPUT_NAME_MAX, JobError, JobRecord
from worker.naming import is_image, not_an_image, output_rel
from worker.paths import PathRefused
from worker.presence import Presence, keep_beating

log = logging.getLogger("cutout.watcher")

# The broker or Redis briefly away: the claim stays and reconcile sends it again later.
UNREACHABLE = (redis.RedisError, OperationalError, OSError)
JOB_FILE = ".job.json"
FRESH_CLAIM_SECONDS = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class WatchConfig:
    inbox: Path
    outbox: Path
    failed_dir: Path
    done_dir: Path
    output_format: str = "png"
    mode: str = "auto"
    poll_seconds: float = 1.0
    settle_seconds: float = 2.0
    rescan_seconds: float = 30.0
    on_success: str = "move"
    max_pending: int = 500
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 0  # 0: no endpoint
    stale_after: float = 240.0  # a "started" job this old without news: its worker died
    record_ttl: int = 604_800  # seconds a job record lives: an output name's reservation too


class Watcher:
    def __init__(self, config: WatchConfig, client: Client) -> None:
        self.config = config
        self.client = client
        self.redis = client.status.client
        self.keys = client.status.keys  # one prefix for records, heartbeats and reservations
        self.claims = Claims(config.inbox)
        self.settler = Settler(config.settle_seconds)
        self.ledger = Ledger(config.inbox / LEDGER) if config.on_success == "keep" else None
        self.paths: queue.Queue[Seen] = queue.Queue()
        self.outcomes: queue.Queue[JobRecord] = queue.Queue()
        self.active: dict[str, Claim] = {}
        self.rewritten: dict[str, _Rewrite] = {}  # failed while their writer was at it
        self.stopping = threading.Event()
        self.metrics = WatcherMetrics()

    # --- the loop ---

    def run(self) -> None:
        for folder in (self.config.inbox, self.config.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        observer = start_observer(
            self.config.inbox, self.config.mode, self.config.poll_seconds, self.paths
        )
        if self.config.metrics_port:
            self.metrics.serve(self.config.metrics_address, self.config.metrics_port)
        follower = threading.Thread(target=self._follow, name="cutout-outcomes", daemon=True)
        follower.start()
        name = f"{socket.gethostname()}:{os.getpid()}"
        presence = Presence(self.redis, prefix=self.keys.prefix)
        keep_beating(presence, "watcher", name, self._presence_info, self.stopping)
        try:
            self.rescan()
            self.reconcile()
            next_rescan = time.monotonic() + self.config.rescan_seconds
            while not self.stopping.is_set():
                self.step()
                if time.monotonic() >= next_rescan:
                    self.rescan()
                    self.reconcile()
                    next_rescan = time.monotonic() + self.config.rescan_seconds
        finally:
            observer.stop()
            observer.join(timeout=5)
            follower.join(timeout=5)
            with contextlib.suppress(*UNREACHABLE):
                presence.forget("watcher", name)

    def _presence_info(self) -> dict[str, object]:
        return {
            "inbox": str(self.config.inbox),
            "pending": len(self.settler),
            "in_flight": len(self.active),
        }

    def stop(self) -> None:
        self.stopping.set()

    def step(self, wait: float = 0.2) -> None:
        """One turn: take new paths, claim what has settled, settle finished jobs."""
        with contextlib.suppress(queue.Empty):
            busy = self.settler or self.rewritten
            self._offer(*self.paths.get(timeout=0.05 if busy else wait))
        while not self.paths.empty():
            self._offer(*self.paths.get_nowait())
        room = self.config.max_pending - len(self.active)
        if room > 0 and self.settler:
            for path, waited in self.settler.ready(room):
                self.metrics.settle_seconds.observe(waited)
                self._alone(path, self.take, path)
        while not self.outcomes.empty():
            record = self.outcomes.get_nowait()
            self._alone(record.id, self.finish, record)
        for job_id in list(self.rewritten):
            self._alone(job_id, self._send_again_once_whole, job_id)
        self.metrics.pending.set(len(self.settler))
        self.metrics.in_flight.set(len(self.active))

    @staticmethod
    def _alone(about: object, action: Callable[[T], None], item: T) -> None:
        """One file's trouble (a name its folder cannot hold, a full disk, a folder it may
        not write) is logged with its name and stays that file's: the watcher goes on with
        the others. A claim whose outcome could not be settled stays, and the next
        reconcile tries again."""
        try:
            action(item)
        except (OSError, PathRefused) as exc:
            log.error("%s: %s", about, exc)

    def rescan(self) -> None:
        for path in scan(self.config.inbox):
            if self.ledger is None or not self._in_ledger(path):
                self._offer(path)

    def _offer(self, path: Path, hint: Hint = "scan") -> None:
        self.metrics.seen.inc()
        self.settler.offer(path, hint)

    # --- claim and enqueue ---

    def take(self, path: Path) -> None:
        if self.ledger is not None and self._in_ledger(path):
            return
        try:
            claim = self.claims.take(path)
        except InboxRefused as exc:
            log.error("%s (left where it is)", exc)
            return
        except PathRefused as exc:  # the claims folder itself: fail the file from where it is
            self._refuse(path, f"cannot be claimed: {exc}")
            return
        if claim is None:
            return  # another watcher took it
        self.active[claim.job_id] = claim
        self.metrics.claimed.inc()
        reason = _refusal(claim.rel)
        if reason is not None:  # it fails here, alone, before a name is reserved for it
            self.finish(_failure(claim.job_id, reason))
            return
        try:
            out = output_rel(
                self.redis,
                claim.rel,
                self.config.output_format,
                self.config.outbox,
                self.config.record_ttl,
                keys=self.keys,
            )
        except UNREACHABLE as exc:
            log.warning("%s: claimed, Redis unreachable (%s); will send it later", claim.rel, exc)
            return
        self.claims.note(claim, JOB_FILE, {"output": str(out), "taken": _signature(claim.path)})
        self._send(claim, out)

    def _send(self, claim: Claim, out: Path) -> None:
        reason = _refusal(claim.rel)
        if reason is not None:  # a claim left by a run that could not fail it: same verdict
            self.finish(_failure(claim.job_id, reason))
            return
        try:
            self.client.submit(
                claim.path,
                job_id=claim.job_id,
                output_path=str(self.config.outbox / out),
                overwrite=True,  # a name reserved for this file: a resend rewrites its own
                input_name=message_name(claim.rel),
            )
        except UNREACHABLE as exc:
            log.warning("%s: claimed, queue unreachable (%s); will send it later", claim.rel, exc)
        except JobError as exc:  # no job can carry it: it fails here instead of the watcher
            self.finish(_failure(claim.job_id, str(exc)))

    def _output_of(self, claim: Claim) -> Path:
        try:
            return Path(self.claims.read_note(claim, JOB_FILE)["output"])
        except (OSError, ValueError, KeyError):
            return output_rel(
                self.redis,
                claim.rel,
                self.config.output_format,
                self.config.outbox,
                self.config.record_ttl,
                keys=self.keys,
            )

    # --- outcomes ---

    def _follow(self) -> None:
        """Final job records from the event stream, for the main loop to settle."""
        position: bytes | str | None = None
        while not self.stopping.is_set():
            try:
                if position is None:
                    position = self.client.status.stream_position()
                position, records = self.client.status.read_events(position, block_ms=500)
            except UNREACHABLE as exc:
                log.warning("cannot follow job events (%s); retrying", exc)
                position = None  # reconcile catches what was missed meanwhile
                self.stopping.wait(1.0)
                continue
            for record in records:
                if record.done:
                    self.outcomes.put(record)

    def finish(self, record: JobRecord) -> None:
        claim = self.active.get(record.id)
        if claim is None or record.id in self.rewritten:
            return  # not a watched file, already settled, or waiting to be sent again
        if record.state != "succeeded" and self._still_written(claim):
            # Its writer paused past the settle time and is not done: what failed was a
            # part of the file. Sent again once it settles (step), never failed for that.
            log.info("%s: still being written; sent again once it settles", claim.rel)
            self.rewritten[record.id] = _Rewrite(claim)
            return
        del self.active[record.id]
        self.metrics.finished.labels(record.state).inc()
        if record.state == "succeeded":
            self._succeeded(claim, record)
        else:
            self._failed(claim, record)
        self.claims.release(claim)

    def _still_written(self, claim: Claim) -> bool:
        """Changed since it was claimed, or still open for writing on this machine."""
        try:
            taken = self.claims.read_note(claim, JOB_FILE).get("taken")
        except (OSError, ValueError, PathRefused):
            taken = None
        now = _signature(claim.path)
        if now is None:
            return False  # gone: nothing more will be written
        return (taken is not None and now != taken) or open_for_writing(claim.path)

    def _send_again_once_whole(self, job_id: str) -> None:
        rewrite = self.rewritten[job_id]
        now, signature = time.monotonic(), _signature(rewrite.claim.path)
        if signature != rewrite.signature:
            rewrite.signature, rewrite.since = signature, now
            return
        if now - rewrite.since < self.config.settle_seconds or open_for_writing(rewrite.claim.path):
            return
        del self.rewritten[job_id]
        claim = rewrite.claim
        out = self._output_of(claim)
        self.claims.note(claim, JOB_FILE, {"output": str(out), "taken": signature})
        log.info("%s: whole now; sending it again", claim.rel)
        self._send(claim, out)

    def _succeeded(self, claim: Claim, record: JobRecord) -> None:
        action = self.config.on_success
        try:
            if action == "move":
                self.claims.move(claim, self.config.done_dir)
            elif action == "delete":
                claim.path.unlink(missing_ok=True)
            elif self.ledger is not None:
                kept = self.claims.move(claim, self.config.inbox)
                if kept is not None:
                    self.ledger.add(kept.relative_to(self.config.inbox), kept.stat())
        except PathRefused as exc:  # a symlinked folder where it would go: not followed
            reason = f"done, but not archived: {exc}"
            self._failed(claim, record.model_copy(update={"state": "failed", "error": reason}))
            return
        log.info("done %s -> %s (%.2f s)", claim.rel, record.output, record.duration or 0.0)

    def _failed(self, claim: Claim, record: JobRecord) -> None:
        error = record.error or "unknown error"
        try:
            target = self.claims.move(claim, self.config.failed_dir, beside=ERROR_SUFFIX)
        except PathRefused as exc:
            # Its mirrored place in failed/ goes through a symlink: the top of failed/.
            error = f"{error} (kept at the top of the failed folder: {exc})"
            flat = Path(claim.rel.name)
            target = self.claims.move(claim, self.config.failed_dir, flat, ERROR_SUFFIX)
        if target is not None:
            self._note_error(target, error, record)
        log.info("failed %s: %s", claim.rel, error)

    def _note_error(self, target: Path, error: str, record: JobRecord) -> None:
        try:
            write_error(
                self.config.failed_dir,
                target,
                error=error,
                job_id=record.id,
                attempts=record.attempts,
                worker=record.worker,
            )
        except (OSError, PathRefused) as exc:  # the input is in failed/ already
            log.error("%s: cannot write its error file (%s)", target, exc)

    def _refuse(self, path: Path, reason: str) -> None:
        """A file that cannot be claimed goes to failed/ from the inbox, with its reason."""
        rel = path.relative_to(self.config.inbox)
        claim = Claim("-", rel, path)
        target = self.claims.move(claim, self.config.failed_dir, beside=ERROR_SUFFIX)
        error = f"{rel}: {reason}"
        if target is not None:
            self._note_error(target, error, _failure("-", error))
        log.error("failed %s: %s", rel, reason)

    # --- after a restart, or a lost event ---

    def reconcile(self) -> None:
        """Settle finished jobs and send again those whose job is gone or stuck."""
        for claim in self.claims.all():
            self.active.setdefault(claim.job_id, claim)
            try:
                record = self.client.status.get(claim.job_id)
                if record is not None and record.done:
                    self.finish(record)
                elif (record is None and not self._fresh(claim)) or (
                    record is not None and self._stuck(record)
                ):
                    self._resend(claim)
            except UNREACHABLE as exc:
                log.warning("reconcile postponed: %s", exc)
                return

    def _fresh(self, claim: Claim) -> bool:
        """Claimed a moment ago, maybe by another watcher that has not sent it yet."""
        try:
            age = time.time() - (self.claims.root / claim.job_id).stat().st_mtime
        except FileNotFoundError:
            return True
        return age < FRESH_CLAIM_SECONDS

    def _stuck(self, record: JobRecord) -> bool:
        if record.state != "started" or record.started is None:
            return False
        age = (datetime.now(UTC) - record.started).total_seconds()
        return age > self.config.stale_after

    def _resend(self, claim: Claim) -> None:
        # Two watchers on one share reconcile the same claims: only one sends it again.
        if not self.redis.set(self.keys.resend(claim.job_id), "1", nx=True, ex=60):
            return
        log.info("%s: job %s is gone; sending it again", claim.rel, claim.job_id)
        self._send(claim, self._output_of(claim))

    def _in_ledger(self, path: Path) -> bool:
        assert self.ledger is not None
        try:
            return self.ledger.contains(path.relative_to(self.config.inbox), os.stat(path))
        except FileNotFoundError:
            return True


@dataclass
class _Rewrite:
    """A claimed file whose writer was still at it when its job failed."""

    claim: Claim
    signature: str | None = None
    since: float = 0.0


def _signature(path: Path) -> str | None:
    """Size, mtime and ctime, as a string that a JSON note keeps; None if gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _refusal(rel: Path) -> str | None:
    """Why no job is sent for a claimed file (it fails here instead); None if one is."""
    if not _utf8(rel):  # neither Redis nor a JSON job can carry such a name
        return f"{rel}: the file name is not valid UTF-8; rename the file"
    if not is_image(rel):  # the rule `cutout p` follows: the same files, the same verdict
        return not_an_image(rel)
    return None


def _utf8(path: Path) -> bool:
    """Whether a name read from disk is valid UTF-8 (undecodable bytes become surrogates)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failure(job_id: str, reason: str) -> JobRecord:
    """The record of a job that failed here, before any worker saw it."""
    return JobRecord.model_validate({"id": job_id, "state": "failed", "error": reason})


def message_name(rel: Path) -> str:
    """The file's path in the inbox, as messages and status records name it; a path longer
    than a job's name may be keeps its end, where the file name is."""
    name = str(rel)
    return name if len(name) <= INPUT_NAME_MAX else "..." + name[-(INPUT_NAME_MAX - 3) :]
