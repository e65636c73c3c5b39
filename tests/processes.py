"""Every process a test starts ends with its test, even when the test fails.

`spawn` starts a process in a session (and process group) of its own and records it;
conftest ends, after each test, the groups that test started and, at the end of the run,
all of them. The kernel also kills a spawned process when the test run itself dies
(PR_SET_PDEATHSIG), so not even a killed pytest leaves a daemon behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

_started: list[subprocess.Popen[bytes]] = []

PR_SET_PDEATHSIG = 1
# Looked up once here: between fork and exec only this call runs, and it takes no lock.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _die_with_the_test_run() -> None:
    # The signal comes when the *thread* that spawned the process ends: spawn from the
    # main thread (every test does).
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen in a process group of its own, ended with the test that made it."""
    process: subprocess.Popen[bytes] = subprocess.Popen(
        args,
        start_new_session=True,
        preexec_fn=_die_with_the_test_run,  # noqa: PLW1509 - async-signal-safe: one syscall
        **kwargs,
    )
    _started.append(process)
    return process


def mark() -> int:
    return len(_started)


def end_since(position: int) -> None:
    """Kill the groups of every process spawned since `mark()` returned `position`."""
    while len(_started) > position:
        end(_started.pop())


def end(process: subprocess.Popen[bytes]) -> None:
    # The whole group: a worker's pool processes, `cutout up`'s children. The group id is
    # the leader's pid, which the kernel does not reuse while the group has members.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
