"""`cutout up` for real: a subprocess with its private redis-server, worker, watcher, Flower.

The machine may run a Redis on 6379 that the tests cannot stop, so every run points the
"already running Redis" probe at a closed port (the hidden --probe-url) unless a test is
about finding one.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from cutout_cli.supervisor import Child, ServiceError, stable_port, state_lock
from tests.conftest import CAT
from tests.processes import spawn
from tests.redis_server import answers, free_port, private_redis

STOP_LIMIT = 30  # seconds `cutout up` may take to stop, by contract
PRIVATE = re.compile(r"started a private Redis at (redis://127\.0\.0\.1:(\d+)/0)")
STARTED = re.compile(r"started (\w+) \(pid (\d+)\)")


@dataclass
class Up:
    """One `cutout up` process, in a session of its own so that a group signal plays Ctrl-C."""

    process: subprocess.Popen[bytes]
    log: Path
    cwd: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the output:\n{self.text()[-4000:]}")
            time.sleep(0.1)
        return match

    def wait_ready(self) -> None:
        self.wait_for(r" ready\.")  # the worker
        self.wait_for(r"watching ")  # the watcher

    def pid_of(self, child: str) -> int:
        pids = {name: int(pid) for name, pid in STARTED.findall(self.text())}
        return pids[child]

    def private_url(self) -> str:
        return self.wait_for(PRIVATE.pattern).group(1)

    def finish(self, timeout: float = STOP_LIMIT + 5) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"cutout up did not stop:\n{self.text()[-4000:]}") from None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal `cutout up` alone: it has to forward the stop to its children itself."""
        self.process.send_signal(sig)
        return self.finish()

    def ctrl_c(self) -> int:
        """What a terminal does: SIGINT to the whole foreground process group at once."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.finish()

    def group_gone(self, timeout: float = 5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False


StartUp = Callable[..., Up]


@pytest.fixture
def base_env(model_path: Path) -> dict[str, str]:
    """No CUTOUT_* from the caller (no configured broker); the real small model, offline."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CUTOUT_")} | {
        "CUTOUT_MODEL": "u2netp",
        "CUTOUT_MODEL_HOME": str(model_path.parent),
        "CUTOUT_MODEL_AUTO_PULL": "false",
        "CUTOUT_SETTLE_SECONDS": "0.3",
        "CUTOUT_RESCAN_SECONDS": "2",
        "CUTOUT_QUEUE": f"up-test-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture
def start_up(tmp_path: Path, base_env: dict[str, str]) -> Iterator[StartUp]:
    """Starts `cutout up` in tmp_path; whatever is left running is killed afterwards."""
    runs: list[Up] = []

    def start(*args: str, env: dict[str, str] | None = None, probe: bool = True) -> Up:
        argv = [sys.executable, "-m", "cutout_cli", "up", *args]
        if probe:  # play a machine with nothing on the default Redis port
            argv += ["--probe-url", f"redis://127.0.0.1:{free_port()}/0"]
        log = tmp_path / f"up-{len(runs)}.log"
        with log.open("wb") as out:
            process = spawn(
                argv,
                cwd=tmp_path,
                env=base_env | (env or {}),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        runs.append(Up(process, log, tmp_path))
        return runs[-1]

    yield start
    for run in runs:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()
    shut_down_private_redis(tmp_path / ".cutout" / "redis")


def shut_down_private_redis(folder: Path) -> None:
    """The private server has a session of its own: a killed test run would leave it behind."""
    port_file = folder / "port"
    if port_file.exists():
        url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        if answers(url):
            with redis.Redis.from_url(url) as client:
                client.shutdown(nosave=True)


def redis_pid(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


def alive(pid: int) -> bool:
    """A zombie counts as gone: whoever adopts an orphan may reap it late."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_private_redis_serves_and_keeps_its_data_and_port(
    start_up: StartUp, tmp_path: Path
) -> None:
    folders = {opt: tmp_path / "service" / opt for opt in ("inbox", "outbox", "failed", "done")}
    up = start_up(*(f"--{opt}={path}" for opt, path in folders.items()), "-c", "1")
    url = up.private_url()
    up.wait_ready()
    up.wait_for(f"watching {re.escape(str(folders['inbox']))}")  # the children got the options
    assert all(folder.is_dir() for folder in folders.values())
    state = tmp_path / ".cutout" / "redis"
    assert (state / "appendonly.aof").is_file()
    assert (state / "port").read_text().strip() == url.split(":")[-1].split("/")[0]
    pid = redis_pid(url)
    with redis.Redis.from_url(url) as client:
        client.set("up-test", "kept")

    start_time = time.monotonic()
    assert up.ctrl_c() == 0, up.text()[-4000:]
    assert time.monotonic() - start_time < STOP_LIMIT
    assert up.group_gone(), "a child outlived cutout up"
    assert gone(pid) and not answers(url)
    assert "stopped" in up.text().splitlines()[-1]

    # A restart finds the same port and, through the append-only file, the same data.
    again = start_up("-c", "1")
    assert again.private_url() == url
    again.wait_ready()
    with redis.Redis.from_url(url) as client:
        assert client.get("up-test") == b"kept"
    assert again.stop(signal.SIGTERM) == 0, again.text()[-4000:]
    assert again.group_gone() and not answers(url)


def test_image_dropped_in_the_inbox_or_posted_to_the_gateway_comes_out(
    start_up: StartUp, tmp_path: Path
) -> None:
    port = free_port()
    up = start_up("-c", "1", "--http", env={"CUTOUT_HTTP_PORT": str(port)})
    up.wait_ready()
    shutil.copy(CAT, tmp_path / "inbox" / "cat.jpg")
    up.wait_for(r"done cat\.jpg")
    assert (tmp_path / "outbox" / "cat.png").is_file()
    assert (tmp_path / "done" / "cat.jpg").is_file()
    assert not (tmp_path / "inbox" / "cat.jpg").exists()

    gateway = f"http://127.0.0.1:{port}/"
    assert f"Gateway and page: {gateway} (no token" in up.text()
    assert wait_for_http(gateway, up) == 200  # the page
    answer = httpx.post(f"{gateway}api/remove", files={"file": CAT.read_bytes()}, timeout=60)
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
    assert up.stop(signal.SIGTERM) == 0, up.text()[-4000:]
    assert up.group_gone()


def test_a_dead_child_stops_everything(start_up: StartUp) -> None:
    up = start_up("-c", "1")
    url = up.private_url()
    up.wait_ready()
    os.kill(up.pid_of("worker"), signal.SIGKILL)
    assert up.finish() == 1
    assert "worker killed by SIGKILL: stopping everything" in up.text()
    assert up.group_gone() and not answers(url)


def test_configured_broker_down_fails_at_once(tmp_path: Path, base_env: dict[str, str]) -> None:
    dead = f"redis://:secret@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cutout_cli", "up"],
        cwd=tmp_path,
        env=base_env | {"CUTOUT_BROKER_URL": dead},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert time.monotonic() - started < 10
    assert dead.replace("secret", "***") in result.stderr
    assert "secret" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    assert not (tmp_path / ".cutout" / "redis").exists()


def test_running_redis_is_used(start_up: StartUp, redis_url: str) -> None:
    up = start_up("-c", "1", "--probe-url", redis_url, probe=False)
    up.wait_for("using the Redis already running at")
    up.wait_ready()
    assert PRIVATE.search(up.text()) is None
    assert up.stop() == 0, up.text()[-4000:]
    assert not (up.cwd / ".cutout" / "redis").exists()


def test_flower_gets_a_generated_password(start_up: StartUp) -> None:
    port = free_port()
    up = start_up("--flower", "-c", "1", env={"CUTOUT_FLOWER_PORT": str(port)})
    password = up.wait_for(r"user admin, password (\S+);").group(1)
    base = f"http://127.0.0.1:{port}/"
    assert wait_for_http(base, up) == 401
    assert http_status(base, f"admin:{password}") == 200
    assert up.stop(signal.SIGINT) == 0, up.text()[-4000:]
    assert up.group_gone()


def http_status(url: str, auth: str | None = None) -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as answer:
        answer.close()
        return answer.code


def wait_for_http(url: str, up: Up, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_status(url)
        except OSError:
            assert up.process.poll() is None, up.text()[-4000:]
            assert time.monotonic() < deadline, f"nothing answers at {url}"
            time.sleep(0.2)


def test_leftover_private_redis_is_stopped_and_its_port_kept(tmp_path: Path) -> None:
    """`cutout up` killed with SIGKILL leaves its Redis running: the next one must not start
    a second server on the same append-only file."""
    folder = tmp_path / "redis"
    port = free_port()
    folder.mkdir()
    (folder / "port").write_text(f"{port}\n")
    with private_redis(folder, port=port) as url:
        assert stable_port(folder) == port
        assert not answers(url)


def test_port_taken_by_a_stranger_moves_the_private_redis(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        taken = stranger.getsockname()[1]
        (tmp_path / "port").write_text(f"{taken}\n")
        port = stable_port(tmp_path)
        assert port != taken
    assert (tmp_path / "port").read_text().strip() == str(port)


def test_one_cutout_up_per_state_folder(tmp_path: Path) -> None:
    with (
        state_lock(tmp_path),
        pytest.raises(ServiceError, match="another cutout up"),
        state_lock(tmp_path),
    ):
        pass


STUBBORN = """
import signal, subprocess, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGQUIT, lambda *_: sys.exit(7))
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
Path(sys.argv[1]).write_text(str(grandchild.pid))
time.sleep(60)
"""


def stubborn_child(tmp_path: Path, cold_signal: signal.Signals | None = None) -> tuple[Child, int]:
    """A child that ignores SIGTERM, with a grandchild; returns it and the grandchild's pid."""
    ready = tmp_path / "grandchild.pid"
    argv = [sys.executable, "-c", STUBBORN, str(ready)]
    child = Child("stubborn", argv, grace=0.3, cold_signal=cold_signal)
    child.start(os.environ)
    deadline = time.monotonic() + 10
    while not ready.exists() or not ready.read_text():
        assert time.monotonic() < deadline, "the stubborn child did not start"
        time.sleep(0.05)
    return child, int(ready.read_text())


def test_child_deaf_to_sigterm_is_killed_with_its_children(tmp_path: Path) -> None:
    child, grandchild = stubborn_child(tmp_path)
    child.stop()
    assert child.exit_code() == -signal.SIGKILL
    assert gone(grandchild), "a grandchild (a Celery pool process) outlived the kill"


def test_cold_signal_comes_before_the_kill(tmp_path: Path) -> None:
    child, grandchild = stubborn_child(tmp_path, cold_signal=signal.SIGQUIT)
    child.stop()
    assert child.exit_code() == 7
    os.kill(grandchild, signal.SIGKILL)  # orphaned by a clean exit: ours to clean up
