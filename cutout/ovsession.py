"""OpenVINO as an inference session (cutout.session's Protocol), for the fast path.

OpenVINO reads the ONNX files as they are, installs beside onnxruntime (the
`onnxruntime-openvino` build would replace it), and on CPUs with bf16 or VNNI instructions
runs U^2-Net 2 to 3.5 times faster than ONNX Runtime at fp32 (README "Performance").
What it actually runs is read back from the compiled model, never assumed: a CPU without
bf16 gets an error, not a silent fp32 run.
"""

from __future__ import annotations

import logging
import queue
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cutout.errors import MissingExtraError, ProviderError

log = logging.getLogger(__name__)

PROVIDER = "OpenVINO:CPU"  # how sessions, logs and `cutout health` name it


def openvino() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise MissingExtraError(
            "precisions other than fp32 run on OpenVINO, which is not installed: "
            "pip install 'cutout-queue[fast]' (or use --precision fp32)"
        ) from None
    return ov


def version() -> str:
    return str(openvino().__version__)


@dataclass(frozen=True)
class _Input:
    name: str


class OpenVinoInference:
    """A compiled model with one infer request per stream. A caller takes a free request
    and gives it back: concurrent callers (cutout p's lanes) never share one, and never
    outnumber the streams (OpenVINO hung, here, with two requests in flight on one
    single-thread stream)."""

    def __init__(self, compiled: Any, streams: int) -> None:
        self.compiled = compiled
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(streams):
            self._free.put(compiled.create_infer_request())
        self._inputs = [_Input(port.get_any_name()) for port in compiled.inputs]

    def get_inputs(self) -> Sequence[Any]:
        return self._inputs

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]
    ) -> list[Any]:
        request = self._free.get()
        try:
            request.infer(input_feed)
            # Copies: the request's buffers are overwritten by its next run.
            return [
                request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))
            ]
        finally:
            self._free.put(request)


def compile_model(path: Path, hint: str, threads: int, streams: int) -> OpenVinoInference:
    """`path` compiled for the CPU, its float arithmetic at `hint` (f32 or bf16); `streams`
    runs at once of `threads` threads each."""
    ov = openvino()
    config = {
        "INFERENCE_PRECISION_HINT": hint,
        "NUM_STREAMS": streams,
        "INFERENCE_NUM_THREADS": threads * streams,
    }
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", config)
    except RuntimeError as exc:  # OpenVINO's own errors are RuntimeErrors
        raise ProviderError(f"{path}: OpenVINO cannot compile it: {exc}") from exc
    got = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    if got != hint:
        raise ProviderError(
            f"OpenVINO runs {path.name} at {got}, not {hint}, on this CPU (no {hint} "
            "instructions?): use another precision"
        )
    return OpenVinoInference(compiled, streams)


def convolutions(inference: OpenVinoInference) -> dict[str, int]:
    """How many convolutions run at each precision, as OpenVINO compiled them: the
    precision actually used (int8 shows as u8 or i8), for the log and `cutout health`."""
    counts: Counter[str] = Counter()
    for op in inference.compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            counts[info["runtimePrecision"].astype(str)] += 1
    return dict(counts)
