"""`cutout models` through click's CliRunner, pulling the real u2netp from a loopback mirror."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cutout import store
from cutout.models import default_home, get_model, model_names
from cutout_cli.common import EXIT_CONFIG
from cutout_cli.main import cli

U2NETP = get_model("u2netp")
RunModels = Callable[..., Result]


class Mirror(ThreadingHTTPServer):
    """Serves the files of one folder by name and records every request."""

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Mirror

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path = self.server.folder / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keeps the test output free of one access-log line per request


@pytest.fixture(scope="session")
def real_u2netp() -> Path:
    """The real u2netp, which these tests serve; missing, it is a failure, not a skip."""
    path = default_home() / U2NETP.file_name
    if not store.verify(path, U2NETP):
        pytest.fail(f"{path} is missing or damaged: run `cutout models pull u2netp` first")
    return path


@pytest.fixture
def mirror(tmp_path: Path, real_u2netp: Path) -> Iterator[Mirror]:
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copyfile(real_u2netp, folder / U2NETP.file_name)
    server = Mirror(folder)
    # A short poll interval keeps shutdown() from adding half a second to every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def run(home: Path, mirror: Mirror) -> RunModels:
    """`cutout models ARGS...` with the model folder in tmp_path and the loopback mirror."""
    runner = CliRunner(env={"CUTOUT_MODEL_HOME": str(home), "CUTOUT_MODEL_MIRROR": mirror.url})
    return lambda *args: runner.invoke(cli, ["models", *args], catch_exceptions=False)


def test_list_shows_present_absent_and_corrupt(
    run: RunModels, home: Path, real_u2netp: Path
) -> None:
    home.mkdir()
    shutil.copyfile(real_u2netp, home / "u2netp.onnx")
    (home / "u2net.onnx").write_bytes(b"half a download")

    result = run("list")

    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "STATUS", "PATH", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines}
    assert list(rows) == model_names()
    assert "4.6 MB" in rows["u2netp"]
    assert " present " in rows["u2netp"]
    assert str(home / "u2netp.onnx") in rows["u2netp"]
    assert " corrupt " in rows["u2net"]
    assert " absent " in rows["silueta"]


def test_list_json(run: RunModels, home: Path) -> None:
    result = run("list", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == model_names()
    u2netp = next(row for row in rows if row["name"] == "u2netp")
    assert u2netp == {
        "name": "u2netp",
        "size_mb": 4.6,
        "status": "absent",
        "path": str(home / "u2netp.onnx"),
        "description": U2NETP.description,
    }


def test_path(run: RunModels, home: Path) -> None:
    result = run("path", "u2netp")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{home / 'u2netp.onnx'}\n"


@pytest.mark.parametrize("args", [("path", "u2netq"), ("pull", "u2netp", "u2netq")])
def test_unknown_names_exit_3_listing_the_known_ones(
    run: RunModels, mirror: Mirror, args: tuple[str, ...]
) -> None:
    result = run(*args)

    assert result.exit_code == EXIT_CONFIG
    assert "u2netq" in result.stderr
    assert ", ".join(model_names()) in result.stderr
    assert mirror.requests == [], "no model is fetched when any name is wrong"


def test_pull_fetches_once_unless_forced(run: RunModels, home: Path, mirror: Mirror) -> None:
    target = home / "u2netp.onnx"

    first = run("pull", "u2netp")
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{target}\n"
    assert store.verify(target, U2NETP)
    assert mirror.requests == ["/u2netp.onnx"]

    again = run("pull", "u2netp")
    assert again.exit_code == 0, again.output
    assert again.stdout == f"{target}\n"
    assert "already present" in again.stderr
    assert mirror.requests == ["/u2netp.onnx"]

    forced = run("pull", "--force", "u2netp")
    assert forced.exit_code == 0, forced.output
    assert mirror.requests == ["/u2netp.onnx", "/u2netp.onnx"]
    assert sorted(p.name for p in home.iterdir()) == ["u2netp.onnx"]
