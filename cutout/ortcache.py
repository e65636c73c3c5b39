"""ONNX Runtime's optimised graph for the CPU, saved once beside the model and reused.

At ORT_ENABLE_ALL, ONNX Runtime rewrites u2net's convolutions into its blocked NCHWc layout
(about 40% faster on this project's 2-core machine than ORT_ENABLE_EXTENDED) but keeps the
original weights as well: about 220 MB more RSS in every process for u2net. A session loaded
from the saved, already optimised graph (with optimisation off) holds the rewritten weights
only, and runs the same operators, so it gives the same outputs, as fast.

The NCHWc block size follows the CPU's vector width, so the file is keyed by the CPU's
flags, the onnxruntime version and the model file; any change gives a new file. Where the
model's folder is read-only the session is simply built the usual way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import secrets
from functools import lru_cache
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

CACHE_DIR = ".cutout-optimised"  # hidden, beside the model files


@lru_cache(maxsize=1)
def cpu_identity() -> str:
    """The CPU's instruction-set flags: what a file built for this CPU depends on."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def cache_path(model: Path) -> Path:
    st = model.stat()
    identity = f"{st.st_size}:{st.st_mtime_ns}:{ort.__version__}:{cpu_identity()}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return model.parent / CACHE_DIR / f"{model.stem}-{key}.onnx"


def create(model: Path, opts: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    """A CPU session for `model` (opts at ORT_ENABLE_ALL), from the saved optimised graph when
    there is one; else built as usual, saving the graph for the next process."""
    cached = cache_path(model)
    if cached.exists():
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(cached), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime's own untyped errors: a damaged cache file
            log.warning("%s: unusable (%s); building the session from %s", cached, exc, model)
            with contextlib.suppress(OSError):
                cached.unlink()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    tmp = cached.with_name(f".{cached.name}.{secrets.token_hex(4)}.tmp")
    try:
        cached.parent.mkdir(exist_ok=True)
        opts.optimized_model_filepath = str(tmp)
    except OSError as exc:  # a read-only model folder: no cache, nothing else changes
        log.debug("no optimised-graph cache in %s: %s", cached.parent, exc)
    try:
        session = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
    except Exception:  # perhaps only the saving failed: try once more without it
        if not opts.optimized_model_filepath:
            raise
        opts.optimized_model_filepath = ""
        with contextlib.suppress(OSError):
            tmp.unlink()
        return ort.InferenceSession(str(model), sess_options=opts, providers=providers)
    if tmp.exists():
        try:
            os.replace(tmp, cached)
            _drop_stale(cached)
        except OSError as exc:
            log.debug("optimised graph not kept: %s", exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
    return session


def _drop_stale(current: Path) -> None:
    """Earlier graphs of the same model (another onnxruntime, another model file)."""
    stem = current.name.rsplit("-", 1)[0]
    for other in current.parent.glob(f"{stem}-*.onnx"):
        if other != current and other.name.rsplit("-", 1)[0] == stem:
            with contextlib.suppress(OSError):
                other.unlink()
