"""The web page at `/`: plain HTML, CSS and JavaScript shipped in the package (no build
step), read once. It asks nothing of the gateway that the API does not offer anyone."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from worker.naming import IMAGE_SUFFIX_LIST

router = APIRouter(include_in_schema=False)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# The page is all its own: no script or style from elsewhere, no framing by other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def asset(name: str) -> bytes:
    data = files("cutout_http").joinpath("static", name).read_bytes()
    # The file picker offers what the watch folder and `cutout p` take: the one list.
    return data.replace(b"__IMAGE_SUFFIXES__", ",".join(IMAGE_SUFFIX_LIST).encode())


def _answer(name: str) -> Response:
    return Response(asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/")
def index() -> Response:
    return _answer("index.html")


@router.get("/app.js")
def script() -> Response:
    return _answer("app.js")


@router.get("/app.css")
def style() -> Response:
    return _answer("app.css")
