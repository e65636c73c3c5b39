"""One image through the engine: decode -> mask -> compose -> (crop) -> encode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from cutout import compose, mask, refine
from cutout.decontaminate import decontaminate
from cutout.errors import OutputFormatError
from cutout.images import Decoded, ImageInput, decode, encode
from cutout.options import RemovalOptions, format_for_path, parse_format
from cutout.session import Session


class Remover:
    """A session and options bound together, with an image background decoded once."""

    def __init__(
        self,
        session: Session,
        options: RemovalOptions | None = None,
        *,
        backdrop: ImageInput | None = None,
    ) -> None:
        """`backdrop`: where an image background is read from, when not from its path (the
        worker hands over the file it opened under its confinement rules)."""
        self.session = session
        self.options = options or RemovalOptions()
        refine.check(self.options.refine)
        self._backdrop: Image.Image | None = None
        if self.options.background.kind == "image":
            assert self.options.background.path is not None
            source = self.options.background.path if backdrop is None else backdrop
            self._backdrop = decode(
                source,
                max_pixels=self.options.max_pixels,
                source=str(self.options.background.path),
            ).image

    def decode(self, data: ImageInput, source: str | None = None) -> Decoded:
        return decode(data, max_pixels=self.options.max_pixels, source=source)

    def cut_out(self, decoded: Decoded) -> Image.Image:
        """The result image: the cut-out on its background, or the mask alone."""
        opts = self.options
        image = decoded.image
        subject = mask.predict(self.session.inference, self.session.spec, decoded.model_input)
        if opts.post_process_mask:
            subject = mask.post_process(subject)
        refined = refine.refine(
            opts.refine,
            image,
            subject,
            grid=self.session.spec.input_size,
            matting_options=opts.matting,
        )
        image = refined.colours
        if opts.decontaminate and opts.refine != "matting" and not opts.only_mask:
            image = decontaminate(image, refined.mask)  # matting's colours are its own
        alpha = compose.subject_alpha(image, refined.mask)
        del subject, refined  # the alpha is all that is needed now (a 80 MP mask: 80 MB)
        if opts.only_mask:
            result = alpha
        else:
            result = compose.compose(
                image,
                alpha,
                opts.background,
                blur_radius=opts.blur_radius,
                backdrop=self._backdrop,
                exact_colours=opts.exact_colours,
                final_alpha=True,
            )
        return compose.crop(result, alpha, opts.crop_margin) if opts.crop else result

    def encode(self, result: Image.Image, fmt: str, source: str) -> bytes:
        return encode(result, fmt, self.options.encode, source=source)

    def process(self, data: ImageInput, fmt: str, source: str | None = None) -> bytes:
        """The encoded result of one input."""
        return self.remove(data, fmt, source).data

    def remove(self, data: ImageInput, fmt: str, source: str | None = None) -> Removal:
        """As `process`, with the input's pixel count beside the result."""
        decoded = self.decode(data, source)
        name = decoded.source
        pixels = decoded.image.width * decoded.image.height
        result = self.cut_out(decoded)
        # Encoding needs only the result: letting the input go first lowers a 12 MP image's
        # peak memory by its ~48 MB (README "Performance").
        del decoded
        return Removal(self.encode(result, fmt, name), pixels)


@dataclass(frozen=True)
class Removal:
    """One image done: the encoded result, and the input's size (what a caller may time by)."""

    data: bytes
    pixels: int  # the input's width x height


def output_format(path: str | Path | None, requested: str | None, default: str) -> str:
    """The format to write: the one asked for, else the output name's, else the default."""
    by_name = format_for_path(path) if path not in (None, "-") else None
    if requested is None:
        return by_name or parse_format(default)
    fmt = parse_format(requested)
    if by_name is not None and by_name != fmt:
        raise OutputFormatError(
            f"{path}: the name says {by_name} but the format asked for is {fmt}"
        )
    return fmt
