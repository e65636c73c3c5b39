"""The queue for real: a Redis, a `cutout worker` process, the u2netp model."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from celery import Celery
from click.testing import CliRunner
from PIL import Image

from cutout_cli.main import cli
from tests.conftest import CAT, ROOT
from tests.processes import spawn
from tests.redis_server import free_port
from tests.service import Worker, make_worker, running_worker
from worker.client import Client
from worker.jobs import TASK_NAME, JobError, JobRecord

README = ROOT / "README.md"


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, model_path: Path
) -> Iterator[Worker]:
    with running_worker(tmp_path_factory.mktemp("service"), redis_url, model_path.parent, 2) as w:
        yield w


@pytest.fixture(scope="module")
def client(worker: Worker) -> Iterator[Client]:
    with Client.from_settings(worker.settings) as c:
        yield c


def drop(worker: Worker, rel: str, source: Path = CAT) -> Path:
    target = worker.folders["inbox"] / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


def noise_image(worker: Worker, rel: str, shape: tuple[int, int]) -> Path:
    """Noise compresses badly: a big noisy PNG keeps a worker busy for a second or more."""
    noise = np.random.default_rng(1).integers(0, 255, (*shape, 3), dtype=np.uint8)
    target = worker.folders["inbox"] / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise).save(target, compress_level=1)
    return target


def finished(client: Client, job_id: str, timeout: float = 60) -> JobRecord:
    return client.wait(job_id, timeout).record


def load(data: bytes | Path) -> Image.Image:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        image.load()
        return image


def job_states(client: Client, job_id: str) -> list[str]:
    """The job's state changes, in order, as published on the event stream."""
    entries = client.status.client.xrange(f"{client.status.keys.prefix}:events")
    return [
        fields[b"state"].decode().strip('"')
        for _, fields in entries
        if fields[b"id"].decode().strip('"') == job_id
    ]


def test_submit_by_path_goes_queued_started_succeeded(worker: Worker, client: Client) -> None:
    source = drop(worker, "shop/shoes/dog one.jpg")
    job_id = client.submit(source)
    record = finished(client, job_id)
    assert record.state == "succeeded", record.error
    assert job_states(client, job_id) == ["queued", "started", "succeeded"]
    out = worker.folders["outbox"] / "shop" / "shoes" / "dog one.png"
    assert record.output == str(out)
    assert record.model == "u2netp" and record.worker and record.duration
    assert record.attempts == 1
    assert record.created and record.started and record.finished
    assert load(out).mode == "RGBA" and load(out).size == load(CAT).size
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file


def test_submit_bytes_returns_the_image(client: Client) -> None:
    job_id = client.submit_bytes(CAT.read_bytes(), name="dog.jpg", format="webp")
    result = client.wait(job_id, 60)
    assert result.record.state == "succeeded" and result.record.output is None
    assert result.data is not None
    image = load(result.data)
    assert image.format == "WEBP" and image.mode == "RGBA"


@pytest.mark.parametrize(
    ("options", "name", "mode"),
    [
        ({"background": "white", "format": "jpg"}, "white.jpg", "RGB"),
        ({"background": "#00ff0080"}, "green.png", "RGBA"),
        ({"background": "blur"}, "blur.png", "RGB"),
        ({"only_mask": True}, "mask.png", "L"),
        ({"crop": True}, "crop.png", "RGBA"),
    ],
)
def test_each_background(
    worker: Worker, client: Client, options: dict[str, object], name: str, mode: str
) -> None:
    source = drop(worker, f"bg/{name}.jpg")
    out = worker.folders["outbox"] / "bg" / name
    record = finished(client, client.submit(source, output_path=str(out), **options))
    assert record.state == "succeeded", record.error
    image = load(out)
    assert image.mode == mode
    if options.get("crop"):
        assert image.width < load(CAT).width


def test_image_background_from_the_inbox(worker: Worker, client: Client) -> None:
    backdrop = worker.folders["inbox"] / "backdrops" / "blue.png"
    backdrop.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (0, 0, 255)).save(backdrop)
    source = drop(worker, "bg/on-blue.jpg")
    record = finished(client, client.submit(source, background=str(backdrop)))
    assert record.state == "succeeded", record.error
    result = load(Path(record.output or "")).convert("RGB")
    assert result.getpixel((result.width - 1, 0)) == (0, 0, 255)  # top right: background


def test_a_background_path_is_found_in_the_folders_only(worker: Worker, client: Client) -> None:
    backdrop = worker.folders["inbox"] / "backdrops" / "red.png"
    backdrop.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (255, 0, 0)).save(backdrop)
    (worker.folders["inbox"].parent / "outside.png").write_bytes(backdrop.read_bytes())
    source = drop(worker, "bg/relative.jpg")
    # Relative to the inbox, as an input path is.
    record = finished(client, client.submit(source, background="backdrops/red.png"))
    assert record.state == "succeeded", record.error
    result = load(Path(record.output or "")).convert("RGB")
    assert result.getpixel((result.width - 1, 0)) == (255, 0, 0)
    # A file relative to the worker's working folder (it shares the test's), one outside the
    # folders and one that exists nowhere: one answer for all, and no picture handed back.
    errors = set()
    for spec in (os.path.relpath(CAT), "../outside.png", "backdrops/missing.png", "~/x.png"):
        answer = client.wait(client.submit(source, background=spec, return_bytes=True), 60)
        assert answer.record.state == "failed" and answer.data is None, spec
        errors.add((answer.record.error or "").replace(spec, "<background>"))
    assert errors == {"<background>: refused: not found in the allowed folders"}


def test_a_job_never_replaces_a_file_unless_told(worker: Worker, client: Client) -> None:
    source = drop(worker, "again/dog.jpg")
    first = finished(client, client.submit(source))
    assert first.state == "succeeded", first.error
    out = Path(first.output or "")
    written = out.read_bytes()
    other = finished(client, client.submit(source, background="white"))
    assert other.state == "failed" and other.attempts == 1
    assert other.error == f"{out}: exists; send overwrite: true to replace it"
    assert out.read_bytes() == written  # untouched
    again = finished(client, client.submit(source, background="white", overwrite=True))
    assert again.state == "succeeded" and again.output == first.output
    assert load(out).mode == "RGB"  # replaced, as asked
    assert sorted(p.name for p in out.parent.iterdir()) == ["dog.png"]


def test_the_same_job_run_again_may_replace_its_own_output(worker: Worker) -> None:
    """A job whose worker died after writing runs again: its own output is no obstacle,
    another job's is (in-process runner, the real model)."""
    from worker.jobs import parse_job
    from worker.runner import JobRunner

    source = drop(worker, "own/dog.jpg")
    runner = JobRunner(worker.settings)
    job = parse_job({"input_path": str(source)}, inline_max_bytes=1000)
    first = runner.run(job, "job-1")
    assert runner.run(job, "job-1").output == first.output
    with pytest.raises(JobError, match="exists; send overwrite: true"):
        runner.run(job, "job-2")


def test_broken_image_fails_at_once_with_reason(worker: Worker, client: Client) -> None:
    broken = worker.folders["inbox"] / "broken.jpg"
    broken.write_bytes(CAT.read_bytes()[:2000])
    record = finished(client, client.submit(broken))
    assert record.state == "failed"
    assert "broken.jpg" in (record.error or "") and "truncated" in (record.error or "")
    assert record.attempts == 1  # never retried


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "../outside.jpg",
        "inside/../../outside.jpg",
    ],
)
def test_paths_outside_the_roots_are_refused(worker: Worker, client: Client, path: str) -> None:
    shutil.copy(CAT, worker.folders["inbox"].parent / "outside.jpg")
    record = finished(client, client.submit(path))
    assert record.state == "failed"
    assert "refused" in (record.error or "")


def test_symlink_in_the_inbox_pointing_outside_is_refused(worker: Worker, client: Client) -> None:
    outside = worker.folders["inbox"].parent / "secret.jpg"
    shutil.copy(CAT, outside)
    link = worker.folders["inbox"] / "innocent.jpg"
    link.symlink_to(outside)
    record = finished(client, client.submit(link))
    assert record.state == "failed" and "refused" in (record.error or "")


def test_output_outside_the_roots_is_refused(
    worker: Worker, client: Client, tmp_path: Path
) -> None:
    source = drop(worker, "out/dog.jpg")
    record = finished(client, client.submit(source, output_path=str(tmp_path / "stolen.png")))
    assert record.state == "failed" and "refused" in (record.error or "")
    assert not (tmp_path / "stolen.png").exists()


@pytest.mark.parametrize(
    ("folder", "rel"),
    [
        ("done", "original.jpg"),
        ("failed", "sub/x.png"),
        ("inbox", ".cutout-claims/0000/x.png"),
        ("outbox", ".hidden/x.png"),
        ("outbox", ".x.png"),
    ],
)
def test_no_job_writes_into_the_archives_or_hidden_places(
    worker: Worker, client: Client, folder: str, rel: str
) -> None:
    archived = drop(worker, "archive/original.jpg")  # what the archive holds
    target = worker.folders[folder] / rel
    if folder == "done":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(archived, target)
    before = target.read_bytes() if target.exists() else None
    record = finished(client, client.submit(archived, output_path=str(target)))
    assert record.state == "failed" and "refused" in (record.error or ""), record.error
    assert (target.read_bytes() if target.exists() else None) == before


def test_an_output_name_too_long_for_its_folder_fails_at_once(
    worker: Worker, client: Client
) -> None:
    source = drop(worker, "long/dog.jpg")
    record = finished(client, client.submit(source, output_path="long/" + "x" * 300 + ".png"))
    assert record.state == "failed" and "output name too long" in (record.error or "")
    assert record.attempts == 1  # not retried as if the folder had hiccupped


def test_a_name_cannot_forge_a_line_in_the_worker_log(worker: Worker, client: Client) -> None:
    forged = "[2026-01-01 00:00:00,000: ERROR/MainProcess] disk on fire"
    broken = worker.folders["inbox"] / "forge.jpg"
    broken.write_bytes(b"not an image")
    name = f"forge.jpg\n{forged}\x1b[2J\r"
    record = finished(client, client.submit(broken, input_name=name))
    assert record.state == "failed"
    assert worker.process is not None
    log = worker.log.read_text(errors="replace")
    deadline = time.monotonic() + 30  # the pool's line reaches the file through the parent
    while "disk on fire" not in log and time.monotonic() < deadline:
        time.sleep(0.1)
        log = worker.log.read_text(errors="replace")
    assert "forge.jpg\\n[2026-01-01" in log and "\\x1b[2J" in log
    assert not any(line.startswith(forged) for line in log.splitlines())
    assert "\x1b" not in log and "\r" not in log


def test_pickle_message_is_refused_and_the_worker_carries_on(
    worker: Worker, client: Client
) -> None:
    source = drop(worker, "pickle/dog.jpg")
    with Celery(broker=worker.settings.broker_url) as app:
        app.conf.accept_content = ["json", "pickle"]
        job_id = app.send_task(
            TASK_NAME,
            kwargs={"input_path": str(source)},
            queue=worker.settings.queue,
            serializer="pickle",
        ).id
    record = finished(client, job_id)  # its sender is told, not left waiting
    assert record.state == "failed"
    assert "refused unread" in (record.error or "") and "pickle" in (record.error or "")
    assert "ContentDisallowed" in worker.log.read_text(errors="replace")
    assert not (worker.folders["outbox"] / "pickle").exists()
    assert worker.process is not None and worker.process.poll() is None
    assert finished(client, client.submit(source)).state == "succeeded"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(["pickle/dog.jpg"], {}), ([], {"input_path": "x.jpg", "surprise": 1})],
    ids=["positional", "unknown field"],
)
def test_a_message_the_task_cannot_take_still_gets_a_failed_record(
    worker: Worker, client: Client, args: list[str], kwargs: dict[str, object]
) -> None:
    with Celery(broker=worker.settings.broker_url) as app:
        job_id = app.send_task(TASK_NAME, args=args, kwargs=kwargs, queue=worker.settings.queue).id
    record = finished(client, job_id)
    assert record.state == "failed" and record.error, record
    assert worker.process is not None and worker.process.poll() is None


def test_worker_killed_mid_task_gets_the_job_again_and_finishes_once(
    worker: Worker, client: Client
) -> None:
    source = noise_image(worker, "slow/noise.png", (2400, 3200))
    job_id = client.submit(source, output_path="slow/noise.png")
    deadline = time.monotonic() + 30
    while (record := client.status.get(job_id)) is None or record.state != "started":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for pid in worker.children():
        os.kill(pid, signal.SIGKILL)
    record = finished(client, job_id, timeout=120)
    assert record.state == "succeeded", record.error
    assert record.attempts == 2
    assert [p.name for p in (worker.folders["outbox"] / "slow").iterdir()] == ["noise.png"]


def test_transient_error_is_retried_then_succeeds(worker: Worker, client: Client) -> None:
    # A file where the output folder should be: writing fails (NotADirectoryError) until
    # someone moves it away, like a share that is briefly unavailable.
    blocker = worker.folders["outbox"] / "blocked"
    blocker.write_text("in the way")
    source = drop(worker, "retry/dog.jpg")
    job_id = client.submit(source, output_path="blocked/dog.png")
    deadline = time.monotonic() + 30
    while (record := client.status.get(job_id)) is None or record.state != "retrying":
        assert time.monotonic() < deadline, record
        time.sleep(0.01)
    blocker.unlink()
    record = finished(client, job_id)
    assert record.state == "succeeded", record.error
    assert record.attempts >= 2
    assert "retrying" in job_states(client, job_id)
    assert (worker.folders["outbox"] / "blocked" / "dog.png").is_file()


def test_transient_error_gives_up_after_max_retries(worker: Worker, client: Client) -> None:
    (worker.folders["outbox"] / "never").write_text("in the way")
    source = drop(worker, "retry/never.jpg")
    record = finished(client, client.submit(source, output_path="never/dog.png"))
    assert record.state == "failed"
    assert "gave up after 4 attempts" in (record.error or "")
    assert record.attempts == 4


def test_poison_job_that_kills_its_worker_fails_after_max_deliveries(
    worker: Worker, client: Client
) -> None:
    source = noise_image(worker, "poison/noise.png", (1500, 2000))  # slow enough to catch
    job_id = client.submit(source, output_path="poison/dog.png")
    for attempt in (1, 2, 3):  # CUTOUT_MAX_DELIVERIES = 3: each delivery dies
        deadline = time.monotonic() + 60
        while (
            (r := client.status.get(job_id)) is None or r.state != "started" or r.attempts < attempt
        ):
            assert time.monotonic() < deadline, r
            time.sleep(0.005)
        for pid in worker.children():
            os.kill(pid, signal.SIGKILL)
    record = finished(client, job_id, timeout=120)
    assert record.state == "failed"
    assert "died 3 times" in (record.error or "")
    assert not (worker.folders["outbox"] / "poison" / "dog.png").exists()


def test_plain_celery_example_from_the_readme_works_as_written(worker: Worker) -> None:
    text = README.read_text()
    example = re.search(r"<!-- plain-celery -->\s*```python\n(.*?)```", text, re.S)
    assert example, "README lost its plain-Celery example"
    drop(worker, "shoes/red.jpg")
    code = example.group(1).replace("redis://127.0.0.1:6379/0", worker.settings.broker_url)
    code = code.replace('queue="cutout"', f'queue="{worker.settings.queue}"')
    namespace: dict[str, object] = {}
    cwd = os.getcwd()
    os.chdir(worker.folders["inbox"].parent)
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    record = namespace["record"]
    assert isinstance(record, dict) and record["state"] == "succeeded"
    assert Path(record["output"]) == worker.folders["outbox"] / "shoes" / "red.png"


@pytest.fixture
def worker_env(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in worker.env.items():
        if name.startswith("CUTOUT_"):
            monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("worker_env")
def test_cutout_submit_replaces_an_output_only_with_overwrite(worker: Worker) -> None:
    source = drop(worker, "cli-again/dog.jpg")
    runner = CliRunner()
    first = runner.invoke(cli, ["submit", str(source), "--wait"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli, ["submit", str(source), "--wait"], catch_exceptions=False)
    assert again.exit_code == 1 and "exists; send overwrite: true" in again.output
    forced = runner.invoke(
        cli, ["submit", str(source), "--wait", "--overwrite"], catch_exceptions=False
    )
    assert forced.exit_code == 0 and "succeeded" in forced.output


@pytest.mark.usefixtures("worker_env")
def test_cutout_submit_by_path_and_inline(worker: Worker, tmp_path: Path) -> None:
    inside = drop(worker, "cli/dog.jpg")
    outside = tmp_path / "elsewhere" / "dog.jpg"
    outside.parent.mkdir()
    shutil.copy(CAT, outside)
    result = CliRunner().invoke(
        cli,
        ["submit", str(inside), str(outside), "--wait", "--json", "-o", str(tmp_path / "got")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["state"] for r in records] == ["succeeded", "succeeded"]
    assert records[0]["output"] == str(worker.folders["outbox"] / "cli" / "dog.png")
    assert records[1]["output"] == str(tmp_path / "got" / "dog.png")
    assert load(tmp_path / "got" / "dog.png").mode == "RGBA"
    # Sent again: the earlier result stays, the new one takes the next free name.
    earlier = (tmp_path / "got" / "dog.png").read_bytes()
    again = CliRunner().invoke(
        cli, ["submit", str(outside), "--wait", "--json", "-o", str(tmp_path / "got")]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["output"] == str(tmp_path / "got" / "dog (2).png")
    assert (tmp_path / "got" / "dog.png").read_bytes() == earlier


@pytest.mark.usefixtures("worker_env")
def test_cutout_submit_failure_exits_1(worker: Worker) -> None:
    broken = worker.folders["inbox"] / "cli" / "broken.png"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = CliRunner().invoke(cli, ["submit", str(broken), "--wait"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "failed" in result.stdout and "broken.png" in result.stdout


def test_flower_needs_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUTOUT_FLOWER_PASSWORD", raising=False)
    result = CliRunner().invoke(cli, ["flower"])
    assert result.exit_code == 3 and "CUTOUT_FLOWER_PASSWORD" in result.stderr


def test_job_posted_through_flowers_rest_api(worker: Worker, client: Client) -> None:
    drop(worker, "flower/red.jpg")
    port = free_port()
    env = worker.env | {
        "CUTOUT_FLOWER_PASSWORD": "s3cret",
        "CUTOUT_FLOWER_PORT": str(port),
    }
    flower = spawn(
        [sys.executable, "-m", "cutout_cli", "flower"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthcheck", flower)
        with pytest.raises(urllib.error.HTTPError) as denied:
            post(base + "/api/task/send-task/cutout.remove", {"kwargs": {}}, auth=None)
        assert denied.value.code == 401
        denied.value.close()
        for page in ("/metrics", "/healthcheck"):  # Flower leaves these open; we do not
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(base + page, timeout=10)
            assert denied.value.code == 401, page
            denied.value.close()
            request = urllib.request.Request(base + page, headers=basic_auth("admin:s3cret"))
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200, page
        denied.value.close()
        body = {"kwargs": {"input_path": "flower/red.jpg", "background": "white"}}
        answer = post(base + "/api/task/send-task/cutout.remove", body, auth="admin:s3cret")
        record = finished(client, answer["task-id"])
        assert record.state == "succeeded", record.error
        assert Path(record.output or "") == worker.folders["outbox"] / "flower" / "red.png"
    finally:
        flower.terminate()
        flower.wait(timeout=10)


def post(url: str, body: dict[str, object], auth: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"} | (basic_auth(auth) if auth else {})
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, str] = json.loads(response.read())
        return answer


def basic_auth(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as answer:
            answer.close()
            return  # it answers (maybe asking for credentials)
        except OSError:
            assert process.poll() is None, "flower exited"
            assert time.monotonic() < deadline, "flower did not start"
            time.sleep(0.2)


@pytest.mark.usefixtures("worker_env")
def test_health_reports_broker_backend_and_a_worker_with_its_provider(worker: Worker) -> None:
    name = worker.hostname.split("@")[0]  # other test sessions' workers may be alive too
    deadline = time.monotonic() + 30
    while True:
        result = CliRunner().invoke(
            cli, ["health", "--json", "--worker-host", name], catch_exceptions=False
        )
        report = json.loads(result.stdout)
        workers = [c for c in report["checks"] if c["name"] == "worker" and name in c["detail"]]
        # One per pool process, each with its own session (a replaced one beats when loaded).
        everyone = len(workers) == len(worker.children())
        if (result.exit_code == 0 and everyone) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.exit_code == 0, report
    assert len(workers) == 2
    assert all("u2netp on CPUExecutionProvider" in c["detail"] for c in workers)
    watcher = next(c for c in report["checks"] if c["name"] == "watcher")
    assert not watcher["required"]
    required = CliRunner().invoke(cli, ["health", "--watcher"], catch_exceptions=False)
    assert required.exit_code == 1 and "no watcher heartbeat" in required.stdout


@pytest.mark.usefixtures("worker_env")
def test_health_drops_a_killed_pool_process_at_once(worker: Worker) -> None:
    # Its heartbeat would say "alive" for up to 30 s more; on the same machine health sees
    # that the process is gone. Celery starts a new one, which beats in its turn.
    name = worker.hostname.split("@")[0]

    def listed() -> set[int]:
        result = CliRunner().invoke(cli, ["health", "--json", "--worker-host", name])
        checks = json.loads(result.stdout)["checks"]
        details = [c["detail"] for c in checks if c["name"] == "worker" and c["ok"]]
        return {int(re.findall(r"pid (\d+)", d)[0]) for d in details}

    deadline = time.monotonic() + 60
    while set(worker.children()) != listed():
        assert time.monotonic() < deadline, "the pool processes never all beat"
        time.sleep(0.5)
    victim = worker.children()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10  # a third of the heartbeat's time to live
    while victim in listed():
        assert time.monotonic() < deadline, "the killed process is still reported alive"
        time.sleep(0.2)
    deadline = time.monotonic() + 60
    while len(listed()) != 2:
        assert time.monotonic() < deadline, "no new pool process reported"
        time.sleep(0.5)
    assert victim not in listed()


def test_health_fails_when_redis_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOUT_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")
    result = CliRunner().invoke(cli, ["health"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "FAIL broker" in result.stdout and "hunter2" not in result.stdout


def test_two_workers_with_different_names_both_take_jobs(worker: Worker, client: Client) -> None:
    root = worker.folders["inbox"].parent  # the same folders, as on a shared volume
    second = make_worker(
        root,
        worker.settings.broker_url,
        Path(worker.settings.model_home),
        CUTOUT_QUEUE=worker.settings.queue,
    )
    second.log = root / "second-worker.log"
    second.start(concurrency=1)
    try:
        records = [
            finished(client, client.submit(drop(worker, f"scale/{i}.jpg"))) for i in range(8)
        ]
        assert all(r.state == "succeeded" for r in records)
        names = {r.worker for r in records}
        assert names == {
            worker.hostname.replace("%h", socket.gethostname()),
            second.hostname.replace("%h", socket.gethostname()),
        }, names
    finally:
        second.stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name) and (not wanted or wanted in line):
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"no {name}{{{wanted}}} in metrics")


def test_worker_metrics_count_images_time_them_and_show_the_queue(
    worker: Worker, client: Client
) -> None:
    port = worker.settings.worker_metrics_port
    before = scrape(port)
    ok_before = metric(before, "cutout_images_total", 0.0, outcome="succeeded")
    record = finished(client, client.submit(drop(worker, "metrics/dog.jpg")))
    broken = worker.folders["inbox"] / "metrics" / "broken.jpg"
    broken.write_bytes(b"nope")
    finished(client, client.submit(broken))
    text = scrape(port)
    assert record.state == "succeeded"
    assert metric(text, "cutout_images_total", outcome="succeeded") == ok_before + 1
    assert metric(text, "cutout_images_total", outcome="failed", reason="image") >= 1
    assert metric(text, "cutout_image_seconds_count", size="small") >= 1
    assert metric(text, "cutout_model_load_seconds") > 0
    assert metric(text, "cutout_queue_length", queue=worker.settings.queue) == 0


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "long name", "missing"])
def test_hostile_inputs_are_refused_and_the_worker_survives(
    worker: Worker, client: Client, kind: str
) -> None:
    folder = worker.folders["inbox"] / "hostile"
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind.replace(' ', '-')}.jpg"
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block a worker forever
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null twin
    elif kind == "directory":
        path.mkdir()
    elif kind == "long name":
        path = folder / ("x" * 10_000 + ".jpg")
    if kind == "long name":
        with pytest.raises(JobError, match="at most 4096 characters"):
            client.submit(path)  # refused before it is even sent
        record = finished(client, send_raw(worker, {"input_path": str(path)}))
    else:
        record = finished(client, client.submit(path))
    assert record.state == "failed"
    assert record.error and (
        "not a regular file" in record.error
        or "not found in the allowed folders" in record.error
        or "4096" in record.error
    )
    assert worker.process is not None and worker.process.poll() is None
    after = drop(worker, f"hostile/after-{kind.replace(' ', '-')}.jpg")
    assert finished(client, client.submit(after)).state == "succeeded"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_path": "a.jpg", "shell": "rm -rf /"},  # unknown field
        {"input_path": ["a.jpg"]},  # wrong type
        {"input_path": "a.jpg", "crop": "yes"},  # wrong type, strictly
        {"input_data": "QUJD" * 10_000_000},  # 30 MB inline, above the 25 MB cap
        {},  # no input
    ],
)
def test_bad_payloads_from_plain_celery_fail_at_once(
    worker: Worker, client: Client, kwargs: dict[str, object]
) -> None:
    record = finished(client, send_raw(worker, kwargs))
    assert record.state == "failed" and record.error and record.error.startswith("invalid job")
    assert record.attempts == 0  # never started, never retried


def test_symlink_at_the_output_path_is_replaced_not_followed(
    worker: Worker, client: Client
) -> None:
    victim = worker.folders["done"] / "precious.txt"
    victim.write_text("must survive")
    link = worker.folders["outbox"] / "linked" / "dog.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    source = drop(worker, "linked/dog.jpg")
    record = finished(client, client.submit(source))
    assert record.state == "failed" and "exists" in (record.error or "")  # not without asking
    assert link.is_symlink() and victim.read_text() == "must survive"
    record = finished(client, client.submit(source, overwrite=True))
    assert record.state == "succeeded"
    assert victim.read_text() == "must survive"
    assert not link.is_symlink() and load(link).mode == "RGBA"


def send_raw(worker: Worker, kwargs: dict[str, object]) -> str:
    """A job as any app would send it, unchecked: only the worker validates it."""
    job_id = str(uuid.uuid4())
    with Celery(broker=worker.settings.broker_url) as app:
        app.send_task(TASK_NAME, kwargs=kwargs, task_id=job_id, queue=worker.settings.queue)
    return job_id


def test_a_job_the_broker_never_took_is_not_left_queued(redis_url: str, tmp_path: Path) -> None:
    # The broker is down, the status Redis is not: the app gets the error, and the record
    # says the job was never queued instead of "queued" for a day.
    from kombu.exceptions import OperationalError

    from settings import load_settings

    settings = load_settings(
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
        result_backend=redis_url,
        inbox=tmp_path,
    )
    with Client.from_settings(settings) as client:
        job_id = str(uuid.uuid4())
        with pytest.raises(OperationalError):
            client.submit(tmp_path / "a.jpg", job_id=job_id)
        record = client.status.get(job_id)
    assert record is not None and record.state == "failed"
    assert record.error is not None and record.error.startswith("not queued: ")
