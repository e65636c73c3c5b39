"""Outputs take their input's access and never follow a symlink: through write_atomic, a real
`cutout worker` process (with `cutout submit`), `cutout p` and `cutout i`.

An output written for an input file gets the input's permission bits and, where the process
may, its group; an output of an inline job gets 0666 less the umask. Run as root (CI), the
inputs are given a group of their own; run as a user, their own group (the part about the
group then proves less).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cutout.images import write_atomic
from cutout_cli.main import cli
from tests.conftest import CAT
from tests.service import Worker, running_worker
from worker.client import Client

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

# Root may give a file any group; a user only one of their own.
GROUP = 4242 if os.geteuid() == 0 else os.getegid()


def shared(path: Path, mode: int, source: Path = CAT) -> Path:
    """An input as a shop's shared inbox holds it: its mode, the shop's group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)
    os.chown(path, -1, GROUP)
    os.chmod(path, mode)
    return path


def access(path: Path) -> tuple[int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_gid


def umask_default() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# --- write_atomic -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o600, 0o664, 0o444], ids=oct)
def test_write_atomic_takes_the_access_of_like_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    source = shared(tmp_path / "in" / "photo.jpg", mode)
    target = tmp_path / "out" / "photo.png"
    target.parent.mkdir()
    while_written: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        (temporary,) = target.parent.iterdir()
        while_written.append(access(temporary))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    previous = os.umask(0o027)  # would take group write and every bit for others
    try:
        write_atomic(target, b"data", like=source)
    finally:
        os.umask(previous)
    assert access(target) == (mode, GROUP)
    assert while_written == [(mode, GROUP)]  # the temp file already had them


def test_write_atomic_without_like_keeps_the_umask_default(tmp_path: Path) -> None:
    write_atomic(tmp_path / "out.png", b"data")
    assert access(tmp_path / "out.png")[0] == umask_default()


# --- the queue ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, model_path: Path
) -> Iterator[Worker]:
    with running_worker(tmp_path_factory.mktemp("service"), redis_url, model_path.parent, 1) as w:
        yield w


@pytest.fixture(scope="module")
def client(worker: Worker) -> Iterator[Client]:
    with Client.from_settings(worker.settings) as c:
        yield c


@pytest.mark.parametrize("mode", [0o640, 0o664], ids=oct)
def test_queued_output_takes_the_inputs_mode_and_group(
    worker: Worker, client: Client, mode: int
) -> None:
    source = shared(worker.folders["inbox"] / "shop" / f"{mode:o}.jpg", mode)
    record = client.wait(client.submit(source)).record
    assert record.state == "succeeded", record.error
    assert record.output == str(worker.folders["outbox"] / "shop" / f"{mode:o}.png")
    assert access(Path(record.output)) == (mode, GROUP)


def test_inline_job_output_keeps_the_umask_default(worker: Worker, client: Client) -> None:
    job_id = client.submit_bytes(CAT.read_bytes(), name="cat.jpg", output_path="inline/cat.png")
    record = client.wait(job_id).record
    assert record.state == "succeeded", record.error
    assert access(worker.folders["outbox"] / "inline" / "cat.png")[0] == umask_default()


def test_cutout_submit_writes_an_inline_result_like_its_input(
    worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in worker.env.items():
        if name.startswith("CUTOUT_"):
            monkeypatch.setenv(name, value)
    source = shared(tmp_path / "elsewhere" / "cat.jpg", 0o640)  # not under the roots: inline
    victim = tmp_path / "victim.txt"
    victim.write_text("must survive")
    (tmp_path / "got").mkdir()
    (tmp_path / "got" / "cat.png").symlink_to(victim)
    result = CliRunner().invoke(
        cli, ["submit", str(source), "--wait", "-o", str(tmp_path / "got")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    # A symlink holds its name like any file: left as it is, the result beside it.
    got = tmp_path / "got" / "cat (2).png"
    assert not got.is_symlink() and access(got) == (0o640, GROUP)
    assert (tmp_path / "got" / "cat.png").is_symlink()
    assert victim.read_text() == "must survive"


@pytest.mark.parametrize("output_path", [None, "escape/cat.png"])
def test_symlinked_folder_in_the_outbox_pointing_out_is_refused(
    worker: Worker, client: Client, tmp_path: Path, output_path: str | None
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    escape = worker.folders["outbox"] / "escape"
    escape.unlink(missing_ok=True)
    escape.symlink_to(outside, target_is_directory=True)
    source = shared(worker.folders["inbox"] / "escape" / "cat.jpg", 0o644)
    job_id = client.submit(source, **({"output_path": output_path} if output_path else {}))
    record = client.wait(job_id).record
    assert record.state == "failed"
    assert "refused, outside the allowed folders" in (record.error or "")
    assert list(outside.iterdir()) == []


# --- in-process: cutout p and cutout i ----------------------------------------------------


@pytest.mark.usefixtures("model_env")
def test_p_outputs_take_their_inputs_access_and_replace_symlinks(tmp_path: Path) -> None:
    tree, out = tmp_path / "shop", tmp_path / "out"
    shared(tree / "a.jpg", 0o640)
    shared(tree / "sub" / "b.jpg", 0o604)
    victim = tmp_path / "victim.txt"
    victim.write_text("must survive")
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "b.png").symlink_to(victim)
    result = CliRunner().invoke(cli, ["p", str(tree), str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert access(out / "a.png") == (0o640, GROUP)
    assert not (out / "sub" / "b.png").is_symlink()
    assert access(out / "sub" / "b.png") == (0o604, GROUP)
    assert victim.read_text() == "must survive"


@pytest.mark.usefixtures("model_env")
def test_i_output_takes_its_inputs_access_and_stdin_the_umask(tmp_path: Path) -> None:
    source = shared(tmp_path / "cat.jpg", 0o640)
    runner = CliRunner()
    result = runner.invoke(cli, ["i", str(source), str(tmp_path / "cat.png")])
    assert result.exit_code == 0, result.output
    assert access(tmp_path / "cat.png") == (0o640, GROUP)
    result = runner.invoke(cli, ["i", "-", str(tmp_path / "piped.png")], input=CAT.read_bytes())
    assert result.exit_code == 0, result.output
    assert access(tmp_path / "piped.png")[0] == umask_default()
