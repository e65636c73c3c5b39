"""ONNX Runtime sessions: provider choice, threads, and one cached session per process."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from cutout import ortcache
from cutout.errors import ModelError, ProviderError
from cutout.models import ModelSpec

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
# Preferred order; intersected with what this onnxruntime build reports.
SUPPORTED_PROVIDERS = (
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)


class InferenceSession(Protocol):
    """What the engine needs of an inference session; onnxruntime's satisfies it."""

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]
    ) -> list[Any]: ...

    def get_inputs(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Session:
    """A loaded model: the registry row that says how to feed it, and the inference session."""

    spec: ModelSpec
    inference: InferenceSession
    providers: tuple[str, ...]  # what the session actually runs on
    path: Path
    requested: tuple[str, ...] = ()  # what was asked for
    precision: str = "fp32"  # cutout.options.PRECISIONS
    runs_at: str = "fp32"  # what its convolutions actually run at, as the runtime reports

    @property
    def fell_back(self) -> bool:
        """An accelerator was asked for but the session runs without it."""
        return any(p not in self.providers for p in self.requested if p != CPU)


class TakingTurns:
    """An inference session whose runs take turns: callers that overlap (`cutout p`'s lanes)
    overlap everything but the model, and wait for it.

    A run holds its activations while it runs: ~260 MB in ONNX Runtime's arena for u2net at
    fp32, so two at once put `cutout p` over 900 MB on 12 MP photos. One run at a time on
    every core costs 4-6% of the speed on HD and 12 MP (README "Memory of cutout p")."""

    def __init__(self, inference: InferenceSession) -> None:
        self._inference = inference
        self._lock = threading.Lock()

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]
    ) -> list[Any]:
        with self._lock:
            return self._inference.run(output_names, input_feed)

    def get_inputs(self) -> Sequence[Any]:
        return self._inference.get_inputs()


def taking_turns(session: Session) -> Session:
    """The session with its runs taking turns (TakingTurns)."""
    return dataclasses.replace(session, inference=TakingTurns(session.inference))


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(processes: int = 1) -> int:
    """Split the cores between processes so that two never fight over the same core."""
    return max(1, usable_cores() // max(1, processes))


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    if requested is None:
        return [p for p in SUPPORTED_PROVIDERS if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ProviderError(
            f"execution provider(s) {', '.join(missing)} not available in this onnxruntime "
            f"build; available: {', '.join(available)}"
        )
    return list(requested)


def _create(path: Path, providers: list[str], threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # One image at a time: inter-op parallelism only adds contention on few cores.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The memory pattern pre-plans one block per run: no faster here, ~200 MB more peak RSS
    # with u2net (bench/, README "Performance").
    opts.enable_mem_pattern = False
    # Idle pool threads sleep rather than spin: `cutout p` decodes and encodes one image while
    # the model runs another on every core, and spinning threads took that work's CPU (2-6%
    # slower on HD and 12 MP); the model alone is as fast within 1-2% (README "Performance").
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        if providers == [CPU]:  # the saved NCHWc graph: ~220 MB less RSS (cutout.ortcache)
            return ortcache.create(path, opts, providers)
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped exception classes
        raise ModelError(f"{path}: cannot load the model: {exc}") from exc


def check_input_size(inference: InferenceSession, spec: ModelSpec) -> None:
    """A file of another family than the one it is fed as (a user's own file, most likely)
    fails here by name, not deep in ONNX Runtime."""
    shape = getattr(inference.get_inputs()[0], "shape", None) or []
    fixed = [side for side in shape[2:] if isinstance(side, int)]
    if fixed and fixed != [spec.input_size] * len(fixed):
        raise ModelError(
            f"{spec.name}: the model takes {'x'.join(map(str, shape[2:]))} inputs but the "
            f"{spec.family} family feeds {spec.input_size}x{spec.input_size}: "
            "is it a model of another family?"
        )


def _warn_fallback(requested: list[str], active: Sequence[str]) -> None:
    # ONNX Runtime lists CUDA when the shim is installed even if CUDA libraries are missing,
    # then silently runs on CPU (rembg issues 439, 508, 600, 632): say so loudly.
    wanted = [p for p in requested if p != CPU]
    got = [p for p in active if p != CPU]
    if wanted and not got:
        log.warning(
            "%s requested but the session runs on CPU: onnxruntime could not load the "
            "provider (missing or mismatched CUDA/cuDNN libraries?)",
            ", ".join(wanted),
        )


_cache: dict[tuple[ModelSpec, Path, tuple[str, ...], int, str], Session] = {}
_lock = threading.Lock()


def open_session(
    spec: ModelSpec,
    path: Path,
    *,
    providers: Sequence[str] | None = None,
    threads: int = 0,
    precision: str = "fp32",
) -> Session:
    """One session per (model, file, providers, threads, precision) per process, reused by
    every call. The model is its whole row: one file fed as two families is two models.
    fp32 runs on ONNX Runtime; bf16 and int8 on OpenVINO (cutout.precision)."""
    nthreads = threads or default_threads()
    if precision == "fp32":
        chosen = choose_providers(providers, ort.get_available_providers())
    else:
        chosen = [_fast_provider(providers, precision)]
    key = (spec, path.resolve(), tuple(chosen), nthreads, precision)
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _cache[key] = _open(spec, path, chosen, nthreads, precision)
        return cached


def _open(spec: ModelSpec, path: Path, chosen: list[str], threads: int, precision: str) -> Session:
    if precision == "fp32":
        runtime = _create(path, chosen, threads)
        active = tuple(runtime.get_providers())
        _warn_fallback(chosen, active)
        inference: InferenceSession = runtime
        runs_at = "fp32"
    else:
        inference, runs_at = _open_fast(spec, path, precision, threads)
        active = tuple(chosen)
    check_input_size(inference, spec)
    log.info(
        "model %s loaded from %s; providers %s; %d threads; precision %s (runs at %s)",
        spec.name,
        path,
        ", ".join(active),
        threads,
        precision,
        runs_at,
    )
    return Session(
        spec=spec,
        inference=inference,
        providers=active,
        path=path,
        requested=tuple(chosen),
        precision=precision,
        runs_at=runs_at,
    )


def _fast_provider(providers: Sequence[str] | None, precision: str) -> str:
    """The fast path runs on OpenVINO's CPU plugin: asking for a GPU with it is an error,
    not a quiet run on the CPU."""
    from cutout.ovsession import PROVIDER

    others = [p for p in providers or () if p != CPU]
    if others:
        raise ProviderError(
            f"precision {precision} runs on the CPU (OpenVINO) only, but {', '.join(others)} "
            "was asked for: use precision fp32 on a GPU, or the CPU provider"
        )
    return PROVIDER


def _open_fast(
    spec: ModelSpec, path: Path, precision: str, threads: int
) -> tuple[InferenceSession, str]:
    from cutout import ovsession
    from cutout import precision as fast_path

    fast = fast_path.prepare(spec, path, precision, threads)
    # The cores a run does not use are for another at once (cutout p's lanes).
    streams = max(1, usable_cores() // threads)
    inference = ovsession.compile_model(fast.graph, fast.recipe.hint, threads, streams)
    convs = ovsession.convolutions(inference)
    runs_at = ", ".join(f"{n} conv {p}" for p, n in sorted(convs.items())) or "?"
    log.info("%s at %s: %s", spec.name, precision, fast.check.summary())
    return inference, runs_at
