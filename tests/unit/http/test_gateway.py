"""The gateway's rules that need no Redis: who may run it open, how tokens are taken and
hidden, what its form accepts, what an upload is, and how results are named."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from cutout.images import register_plugins
from cutout_cli.main import cli
from cutout_http.config import GatewayConfig, OpenGatewayError, is_loopback
from cutout_http.fields import FieldError, job_options, rembg_colour
from cutout_http.media import content_type, image_format, result_name
from settings import SettingsError, load_settings
from tests.conftest import CAT

TOKEN = "a-long-enough-token-42"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("gateway.example", False)],
)  # fmt: skip
def test_only_loopback_counts_as_closed(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_the_gateway_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    with pytest.raises(OpenGatewayError, match=r"0\.0\.0\.0.*CUTOUT_HTTP_TOKEN"):
        GatewayConfig.from_settings(load_settings(http_address="0.0.0.0"))
    config = GatewayConfig.from_settings(load_settings(http_address="0.0.0.0", http_token=TOKEN))
    assert config.tokens == (TOKEN,) and config.url == "http://0.0.0.0:7000/"
    both = load_settings(http_token=TOKEN, http_tokens=f"{TOKEN}-app1, {TOKEN}-app2")
    assert both.http_token_list == [TOKEN, f"{TOKEN}-app1", f"{TOKEN}-app2"]


def test_cutout_http_open_without_a_token_exits_3_before_listening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUTOUT_HTTP_ADDRESS", "0.0.0.0")
    result = CliRunner().invoke(cli, ["http"])
    assert result.exit_code == 3
    assert "beyond this machine, with no token" in result.output
    # So does `cutout up --http`, before it starts anything.
    result = CliRunner().invoke(cli, ["up", "--http"])
    assert result.exit_code == 3 and "CUTOUT_HTTP_TOKEN" in result.output


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("short", "at least 16"),
        ("change-me-to-a-long-random-string", "placeholder"),
        ("has a space in it somewhere", "without spaces"),
    ],
)
def test_a_weak_token_is_refused_and_never_shown(value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(http_tokens=f"{TOKEN},{value}")
    message = str(caught.value)
    assert "CUTOUT_HTTP_TOKENS='***'" in message and reason in message
    assert value not in message and TOKEN not in message


def test_an_empty_token_setting_means_none() -> None:
    assert load_settings(http_token="", http_tokens=" , ").http_token_list == []


def test_rembg_colours_and_conflicts() -> None:
    assert rembg_colour("255, 0, 0") == "#ff0000ff"
    assert rembg_colour("0,0,0,0") == "#00000000"
    for bad in ("red", "1,2", "1,2,3,256", "1,2,3,4,5"):
        with pytest.raises(FieldError, match="bgc"):
            rembg_colour(bad)
    with pytest.raises(FieldError, match="om=True and only_mask=False disagree"):
        job_options({"om": True, "only_mask": False})
    with pytest.raises(FieldError, match="a='matting' and refine='guided' disagree"):
        job_options({"a": True, "refine": "guided"})
    assert job_options({"a": False, "refine": "guided"}) == {"refine": "guided"}


def test_a_background_is_a_colour_transparent_or_blur_never_a_path() -> None:
    for spec in ("white", "#102030", "transparent", "blur"):
        assert job_options({"background": spec}) == {"background": spec}
    with pytest.raises(FieldError, match="not a colour"):
        job_options({"background": "/srv/inbox/secret.jpg"})
    with pytest.raises(FieldError, match="background"):
        job_options({"background": "#12345"})


def encoded(fmt: str, mode: str = "RGB") -> bytes:
    register_plugins()  # HEIF's encoder (pillow-heif), as the decoder registers it
    out = io.BytesIO()
    Image.new(mode, (16, 16)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp"),
     ("TIFF", "tiff"), ("HEIF", "heic"), ("AVIF", "avif")],
)  # fmt: skip
def test_an_upload_is_known_by_its_first_bytes(fmt: str, expected: str) -> None:
    assert image_format(encoded(fmt)) == expected


def test_what_is_not_an_image_is_known_too() -> None:
    for data in (b"", b"hello", b"%PDF-1.7", b"RIFF\x00\x00\x00\x00WAVE"):
        assert image_format(data) is None
    assert content_type(b"hello") == "application/octet-stream"
    assert content_type(CAT.read_bytes()) == "image/jpeg"


def test_a_result_is_named_after_its_input_and_what_it_is() -> None:
    png = encoded("PNG")
    assert result_name("shoes/red.jpg", png) == "red.png"
    assert result_name("C:\\photos\\red.JPG", encoded("WEBP")) == "red.webp"
    assert result_name(None, png) == result_name("..", png) == "image.png"
    assert len(result_name("x" * 400 + ".jpg", png).encode()) <= 255


def test_the_gateway_loads_no_engine() -> None:
    """Built and ready to serve, the gateway has imported neither numpy nor ONNX Runtime: it
    enqueues, the workers remove (lint-imports holds the imports; this, what runs)."""
    code = (
        "import sys; from cutout_http.app import create_app; create_app(); "
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'scipy', 'cutout.pipeline') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_page_offers_the_files_the_service_takes() -> None:
    """The page's file picker lists the one suffix list (worker.naming), HEIC and AVIF too."""
    from cutout_http.page import asset
    from worker.naming import IMAGE_SUFFIX_LIST

    page = asset("index.html").decode()
    accept = page.split('accept="', 1)[1].split('"', 1)[0].split(",")
    assert set(IMAGE_SUFFIX_LIST) <= set(accept) and {".heic", ".avif"} <= set(accept)
