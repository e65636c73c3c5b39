"""The queued path: `cutout up` (private Redis, worker, watcher) fed through its inbox the way
a well-behaved producer does it (write under a hidden name, rename into place).

Measures, per size class, the time from the first drop to the last output; the added latency
of single files (arrival to output, minus the job's own engine time from its status record);
the worker's peak RSS; and the CPU the idle service uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cutout_cli.supervisor import descendants

START_TIMEOUT = 120.0
JOB_TIMEOUT = 300.0
POLL = 0.01
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing answers: `cutout up` starts its own Redis


def tree(pid: int) -> list[int]:
    """pid and its descendants (Linux /proc)."""
    return [pid, *descendants(pid)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def drop(source: Path, target: Path) -> None:
    """Copy under a hidden temporary name, then rename into place: the file appears whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    hidden = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, hidden)
    os.replace(hidden, target)


def wait_for(paths: list[Path], timeout: float = JOB_TIMEOUT) -> dict[Path, float]:
    """When each path appeared (time.monotonic), waiting for all of them."""
    seen: dict[Path, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(paths):
        now = time.monotonic()
        for path in paths:
            if path not in seen and path.exists():
                seen[path] = now
        if now > deadline:
            missing = [str(p) for p in paths if p not in seen]
            raise TimeoutError(f"no output after {timeout:g} s for {missing[:3]}")
        time.sleep(POLL)
    return seen


@dataclass
class Service:
    """A running `cutout up` in a work folder of its own."""

    root: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def failed(self) -> list[Path]:
        return sorted((self.root / "failed").rglob("*.error.json"))

    def run_batch(self, files: list[Path], rel: str) -> float:
        """Drop all files at once; seconds from the first drop to the last output."""
        return self.run_batches({"": files}, rel)

    def run_batches(self, batches: dict[str, list[Path]], rel: str) -> float:
        """Drop every file of every batch (one subfolder each) at once; seconds from the first
        drop to the last output."""
        drops = [(f, Path(rel) / sub) for sub, files in batches.items() for f in files]
        targets = [self.outbox / where / f"{f.stem}.png" for f, where in drops]
        started = time.monotonic()
        for f, where in drops:
            drop(f, self.inbox / where / f.name)
        done = wait_for(targets)
        return max(done.values()) - started

    def latencies(self, files: list[Path], rel: str) -> list[float]:
        """Seconds from arrival to output minus the job's engine time, one file at a time,
        each renamed into a folder the watcher already watches (a folder made together with
        its files is seen by a scan, whose files wait the settle time), under a new name."""
        folder = self.inbox / rel
        folder.mkdir(parents=True, exist_ok=True)
        time.sleep(1.0)  # the observer adds its watch on the new folder
        arrivals: dict[Path, tuple[float, float]] = {}
        for i, f in enumerate(files):
            name = f"{i}-{f.name}"
            target = self.outbox / rel / f"{Path(name).stem}.png"
            started = time.monotonic()
            drop(f, folder / name)
            arrivals[target] = (started, wait_for([target])[target])
        durations = self.durations()
        return [
            (end - start) - durations.get(str(target), 0.0)
            for target, (start, end) in arrivals.items()
        ]

    def durations(self) -> dict[str, float]:
        """Each output's engine time (seconds), from the job records."""
        out = subprocess.run(
            [sys.executable, "-m", "cutout_cli", "status", "--json", "-n", "1000"],
            env=self.env,
            capture_output=True,
            check=True,
        ).stdout
        records = json.loads(out)
        return {r["output"]: float(r["duration"]) for r in records if r.get("duration")}

    def worker_peak_rss_mb(self) -> float:
        return max(
            (peak_rss_mb(p) for p in tree(self.process.pid) if " worker" in cmdline(p)),
            default=0.0,
        )

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until the service uses under 5% of a core (its pool processes load their model
        in the background after the first job): it must not skew what is measured next."""
        deadline = time.monotonic() + timeout
        while self.idle_cpu_percent(0.5) > 5 and time.monotonic() < deadline:
            pass

    def idle_cpu_percent(self, seconds: float) -> float:
        """CPU the whole service (Redis, worker, watcher) uses while nothing arrives, in % of
        one core."""
        pids = tree(self.process.pid)
        before = cpu_seconds(pids)
        time.sleep(seconds)
        return 100 * (cpu_seconds(pids) - before) / seconds


@contextmanager
def service(
    root: Path,
    model: str,
    log: Path,
    settle: float | None = None,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """`cutout up` (with `args`, in `env` over ours) on folders under root, with its own
    Redis, until the block ends."""
    if root.exists():
        shutil.rmtree(root)
    for name in ("inbox", "outbox", "failed", "done", "state"):
        (root / name).mkdir(parents=True)
    given = env or {}
    env = {
        **os.environ,
        "CUTOUT_MODEL": model,
        "CUTOUT_STATE_DIR": str(root / "state"),
        # Off: a service already running on this machine may hold the default ports.
        "CUTOUT_WORKER_METRICS_PORT": "0",
        "CUTOUT_WATCHER_METRICS_PORT": "0",
        **given,
    }
    if settle is not None:
        env["CUTOUT_SETTLE_SECONDS"] = str(settle)
    folders = [f"--{name}={root / name}" for name in ("inbox", "outbox", "failed", "done")]
    argv = [
        *(sys.executable, "-m", "cutout_cli", "up", *folders, *args),
        f"--probe-url={CLOSED_PORT_URL}",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    svc = Service(root, process, env)
    try:
        port_file = root / "state" / "redis" / "port"
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cutout up did not start; see {log}")
            time.sleep(0.1)
        env["CUTOUT_BROKER_URL"] = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        env["CUTOUT_RESULT_BACKEND"] = env["CUTOUT_BROKER_URL"]
        yield svc
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        # The ordered stop (SIGTERM: SIGINT is ignored in a shell's background jobs).
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            for pid in reversed(tree(process.pid)):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
