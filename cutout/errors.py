"""One error hierarchy for everything cutout raises on purpose.

The CLI maps these to exit codes and the worker to task states; library code only raises them.
"""

from __future__ import annotations


class CutoutError(Exception):
    """Base of every error cutout raises on purpose."""


class ConfigError(CutoutError, ValueError):
    """A setting or option has a value cutout cannot use."""


class BackgroundSpecError(ConfigError):
    """A background spec is not transparent, blur, a colour or an image file."""


class ModelError(CutoutError):
    """A model could not be found, fetched, verified or loaded."""


class UnknownModelError(ModelError, ValueError):
    """The model name is not in the registry."""


class ModelMissingError(ModelError):
    """The model file is absent and could not be fetched."""


class ModelCorruptError(ModelError):
    """The model file on disk does not match its checksum."""


class ModelPullError(ModelError):
    """Every source of a model failed."""


class ProviderError(ModelError):
    """The requested ONNX Runtime execution providers are not available."""


class ImageError(CutoutError):
    """An input image cannot be used; the message names the image and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class EmptyImageError(ImageError):
    """The input has no bytes at all."""


class NotAnImageError(ImageError):
    """The input is not in any image format cutout reads."""


class TruncatedImageError(ImageError):
    """The input ends before its image data does."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (a decompression bomb, maybe)."""


class UnsupportedImageError(ImageError):
    """The image decodes but its mode or layout cannot be processed."""


class OutputFormatError(CutoutError, ValueError):
    """The requested output format cannot hold the result (say, transparency in JPEG)."""


class MissingExtraError(ConfigError):
    """An option needs an optional dependency that is not installed; names the extra."""
