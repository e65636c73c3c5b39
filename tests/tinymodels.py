"""Tiny ONNX models, built here with the `onnx` package, shaped like each family's real
files: the same input and output names and shapes, a few multiplications instead of the
network. The real IS-Net and BiRefNet weights (hundreds of MB) cannot be fetched on the
test machines; these test each family's code - how its input is made and how its output
becomes a mask - against rembg's own sessions on the very same file.

Each output is non-linear in the input (a weighted sum of squared channels), so a wrong
mean, std or input size changes the mask, which min-max normalisation alone would hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class Shape:
    input_name: str
    output_names: tuple[str, ...]
    size: int
    logits: bool  # the output is logits (BiRefNet), else a 0..1 saliency map


# The real files' inputs and outputs (outputs: the first is the one used; the others are
# side outputs, here each a different map so that using the wrong one would show).
SHAPES = {
    "u2net": Shape("input.1", tuple(f"d{i}" for i in range(7)), 320, logits=False),
    "isnet": Shape(
        "input_image", ("output_image", *(f"side{i}" for i in range(1, 6))), 1024, False
    ),
    "birefnet": Shape("input_image", ("output_image",), 1024, logits=True),
}


def build(path: Path, family: str) -> Path:
    """Write a tiny model of `family` at `path` and return the path."""
    shape = SHAPES[family]
    side = shape.size
    weights = numpy_helper.from_array(
        np.array([0.5, 0.3, 0.2], np.float32).reshape(1, 3, 1, 1), "weights"
    )
    nodes = [
        helper.make_node("Mul", [shape.input_name, shape.input_name], ["squared"]),
        helper.make_node("Conv", ["squared", "weights"], ["summed"]),
    ]
    initialisers = [weights]
    first = "summed"
    if shape.logits:  # a spread of logits around 0, as BiRefNet's are
        initialisers += [
            numpy_helper.from_array(np.array(4.0, np.float32), "gain"),
            numpy_helper.from_array(np.array(-3.0, np.float32), "offset"),
        ]
        nodes += [
            helper.make_node("Mul", ["summed", "gain"], ["scaled"]),
            helper.make_node("Add", ["scaled", "offset"], ["logits"]),
        ]
        first = "logits"
    nodes.append(helper.make_node("Identity", [first], [shape.output_names[0]]))
    for name in shape.output_names[1:]:
        nodes.append(helper.make_node("Neg", [first], [name]))
    tensor = [1, 3, side, side]
    graph = helper.make_graph(
        nodes,
        f"tiny-{family}",
        [helper.make_tensor_value_info(shape.input_name, TensorProto.FLOAT, tensor)],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, side, side])
            for name in shape.output_names
        ],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # read by every onnxruntime this project supports
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
