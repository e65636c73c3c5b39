"""One job through the engine, with no Celery in sight: paths confined to the roots,
options merged over the settings, the result written atomically or returned as bytes."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cutout.images import ImageInput, write_atomic
from cutout.options import RemovalOptions, merged
from cutout.pipeline import Removal, Remover, output_format
from cutout.session import Session
from settings import Settings, engine
from worker import naming
from worker.jobs import JobError, RemoveJob
from worker.paths import (
    input_file,
    open_input,
    output_file,
    output_folder,
)

JOB_ATTRIBUTE = "user.cutout.job"  # the id of the job that wrote an output
_MAX_REMOVERS = 16


@dataclass(frozen=True)
class Outcome:
    output: Path | None  # where the result was written, if anywhere
    data: bytes | None  # the encoded result, when the job asked for the bytes
    model: str
    duration: float
    pixels: int  # of the input, for the per-size-class timing


class JobRunner:
    """Per worker process: warm model sessions, the default options, the allowed roots."""

    def __init__(
        self,
        settings: Settings,
        *,
        processes: int = 1,
        sessions: Callable[[str, str], Session] | None = None,
    ) -> None:
        """`sessions` opens a session by model name and precision; by default from the
        settings' model files (a test hands in a small fake where the model is not the point)."""
        self.settings = settings
        self.processes = processes
        self.defaults = engine.removal_options(settings)
        self._removers: dict[tuple[str, str, RemovalOptions], Remover] = {}
        self._lock = threading.Lock()
        self._sessions = sessions or self._model_session

    def warm(self) -> Session:
        """Load the default model now, so that the first job does not pay for it."""
        return self._remover(self.settings.model, self.settings.precision, self.defaults).session

    def run(self, job: RemoveJob, job_id: str = "") -> Outcome:
        """`job_id` stamps the output (an extended attribute, where the file system keeps
        them), so that the same job run again may replace what it wrote itself."""
        started = time.monotonic()
        settings = self.settings
        source: ImageInput
        if job.input_path is not None:
            source = input_file(job.input_path, settings.inbox, settings.roots)
        else:
            source = job.image_bytes or b""
        fmt = output_format(job.output_path, job.format, settings.output_format)
        target = self._target(job, source, fmt)
        if target is not None and not (job.overwrite or _free_or_ours(target, job_id)):
            raise _taken(target)  # said before any work; checked again, atomically, at the end
        model = job.model or settings.model
        if model not in settings.offered_models:
            # A job chooses among the models the operator offers, never a file: each one
            # costs the worker its memory, and a download where auto-pull is on.
            offered = ", ".join(settings.offered_models)
            raise JobError(f"model {model!r} is not offered here; offered: {offered}")
        remover = self._remover(model, job.precision or settings.precision, self._options(job))
        removal, info = self._remove(remover, source, fmt, job.label)
        result = removal.data
        if target is not None:
            stamp = {JOB_ATTRIBUTE: job_id.encode()} if job_id else None
            try:
                with output_folder(target.parent, settings.roots) as folder:
                    write_atomic(
                        target,
                        result,
                        like=info,
                        dir_fd=folder,
                        replace=job.overwrite or _free_or_ours(target, job_id),
                        attributes=stamp,
                    )
            except FileExistsError:
                raise _taken(target) from None  # another writer got there meanwhile
            except OSError as exc:
                if exc.errno != errno.ENAMETOOLONG:
                    raise  # a folder hiccup: retried
                raise JobError(f"{target.name}: output name too long for its folder") from None
        keep = job.return_bytes or target is None
        duration = time.monotonic() - started
        return Outcome(target, result if keep else None, model, duration, removal.pixels)

    def _remove(
        self, remover: Remover, source: ImageInput, fmt: str, label: str
    ) -> tuple[Removal, os.stat_result | None]:
        """The job's result, and the input file's stat (its access goes to the output)."""
        if not isinstance(source, Path):
            return remover.remove(source, fmt, label), None
        stream, info = open_input(source, label, self.settings.roots)
        with stream:
            return remover.remove(stream, fmt, label), info

    def _target(self, job: RemoveJob, source: ImageInput, fmt: str) -> Path | None:
        settings = self.settings
        archives = (settings.done_dir, settings.failed_dir)
        if job.output_path is not None:
            return output_file(job.output_path, settings.outbox, settings.roots, archives=archives)
        if isinstance(source, Path) and not job.return_bytes:
            mirrored = naming.mirrored(source, settings.inbox, fmt)
            # Confined like any output path: a folder in the outbox may be a symlink.
            return output_file(str(mirrored), settings.outbox, settings.roots, archives=archives)
        return None

    def _options(self, job: RemoveJob) -> RemovalOptions:
        options = merged(job.options(), self.defaults, local=False)
        backdrop = options.background.path
        if job.background is not None and backdrop is not None:
            # A backdrop file is found like an input: relative to the inbox, confined,
            # a regular file; the same answer whether it is missing or not allowed.
            real = input_file(str(backdrop), self.settings.inbox, self.settings.roots)
            options = replace(options, background=replace(options.background, path=real))
        return options

    def _remover(self, model: str, precision: str, options: RemovalOptions) -> Remover:
        key = (model, precision, options)
        with self._lock:
            remover = self._removers.get(key)
            if remover is None:
                if len(self._removers) >= _MAX_REMOVERS:
                    self._removers.clear()  # a handful of option sets in practice
                session = self._sessions(model, precision)
                remover = self._removers[key] = self._new_remover(session, options)
            return remover

    def _model_session(self, model: str, precision: str) -> Session:
        return engine.model_session(
            self.settings, model, precision=precision, processes=self.processes, progress=False
        )

    def _new_remover(self, session: Session, options: RemovalOptions) -> Remover:
        backdrop = options.background.path
        if backdrop is None or backdrop == self.defaults.background.path:
            return Remover(session, options)  # the configured backdrop: the operator's file
        # A job's backdrop is opened as its input is: no symlink swapped in meanwhile.
        stream, _ = open_input(backdrop, str(backdrop), self.settings.roots)
        with stream:
            return Remover(session, options, backdrop=stream)


def _free_or_ours(target: Path, job_id: str) -> bool:
    """Whether writing `target` replaces nothing but this job's own earlier output (a job
    run again after its worker died once it had written)."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return True
    except OSError:
        return not os.path.lexists(target)  # a symlink or a FIFO there: not ours
    try:
        return bool(job_id) and os.getxattr(fd, JOB_ATTRIBUTE) == job_id.encode()
    except (OSError, AttributeError):  # no such attribute, or none on this file system
        return False
    finally:
        os.close(fd)


def _taken(target: Path) -> JobError:
    return JobError(f"{target}: exists; send overwrite: true to replace it")
