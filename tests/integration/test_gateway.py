"""The HTTP gateway for real: a Redis, a `cutout worker` process with u2netp, and the gateway
served by uvicorn on a free loopback port, called over HTTP as any app would."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

from cutout_cli.main import cli
from tests.conftest import CAT, PHOTOS, ROOT
from tests.gateway import RunningGateway, running_gateway
from tests.service import Worker, running_worker
from worker.jobs import STATES

TOKEN = "test-token-0123456789abcdef"
UPLOAD_CAP = 200_000  # bytes: every shipped photo fits, and a test can send more


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, model_path: Path
) -> Iterator[Worker]:
    with running_worker(tmp_path_factory.mktemp("gateway"), redis_url, model_path.parent, 1) as w:
        yield w


@pytest.fixture(scope="module")
def gateway(worker: Worker) -> Iterator[RunningGateway]:
    with running_gateway(worker.settings, token=TOKEN, inline_max_bytes=UPLOAD_CAP) as gw:
        yield gw


@pytest.fixture(scope="module")
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    """A caller with the token."""
    with httpx.Client(base_url=gateway.url, headers=gateway.headers(), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def idle_gateway(worker: Worker) -> Iterator[RunningGateway]:
    """A gateway on a queue no worker takes from: its jobs stay queued. No token."""
    with running_gateway(
        worker.settings, queue=f"{worker.settings.queue}-idle", http_wait_seconds=0.5
    ) as gw:
        yield gw


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def upload(path: Path = CAT, name: str | None = None) -> dict[str, Any]:
    return {"file": (name or path.name, path.read_bytes(), "image/jpeg")}


def broken_jpeg(tmp_path: Path) -> Path:
    """A JPEG cut in half: it starts as one (the gateway takes it), a worker cannot decode it."""
    path = tmp_path / "half.jpg"
    data = CAT.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def wait_done(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's final record, from the event stream (no polling)."""
    with http.stream("GET", "/api/events", params={"id": job_id}) as stream:
        for record in records(stream):
            if record["state"] in ("succeeded", "failed"):
                return record
    raise AssertionError("the stream ended before the job did")


def records(stream: httpx.Response) -> Iterator[dict[str, Any]]:
    for event in server_sent_events(stream):
        if event.get("event") == "job":
            yield json.loads(event["data"])


def server_sent_events(stream: httpx.Response) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in stream.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


# --- rembg's route ---------------------------------------------------------------------


def test_remove_answers_the_cut_out_as_rembg_does(http: httpx.Client) -> None:
    """A rembg client's request (only the file) and one with rembg's names (`om`, `bgc`)."""
    answer = http.post("/api/remove", files=upload())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    cut = png(answer.content)
    with Image.open(CAT) as original:
        assert (cut.mode, cut.size) == ("RGBA", original.size)
    assert 'filename="chelsea.png"' in answer.headers["content-disposition"]
    assert answer.headers["cutout-job-id"]

    mask = http.post("/api/remove", files=upload(), data={"om": "true"})
    assert mask.status_code == 200 and png(mask.content).mode == "L"
    white = http.post(
        "/api/remove", params={"bgc": "255,255,255,255"}, files=upload(), data={"format": "jpg"}
    )
    assert white.headers["content-type"] == "image/jpeg"
    assert png(white.content).getpixel((0, 0)) >= (250, 250, 250)


def test_remove_refuses_what_is_not_an_image_at_once(http: httpx.Client) -> None:
    answer = http.post("/api/remove", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert answer.status_code == 422
    body = answer.json()
    assert body["file"] == "notes.txt" and body["error"].startswith("not an image")


def test_remove_answers_422_with_the_workers_reason_for_a_broken_image(
    http: httpx.Client, tmp_path: Path
) -> None:
    answer = http.post("/api/remove", files=upload(broken_jpeg(tmp_path)))
    assert answer.status_code == 422
    body = answer.json()
    assert body["file"] == "half.jpg" and body["error_kind"] == "image"
    assert "truncated" in body["error"] or "corrupt" in body["error"], body


def test_options_out_of_range_or_unknown_are_422_naming_the_field(http: httpx.Client) -> None:
    answer = http.post("/api/remove", files=upload(), data={"crop_margin": "-1"})
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("crop_margin: ")
    misspelt = http.post("/api/remove", files=upload(), data={"cropp": "true"})
    assert misspelt.status_code == 422 and "cropp" in misspelt.json()["error"]
    path = http.post("/api/remove", files=upload(), data={"background": "/etc/hosts"})
    assert path.status_code == 422 and "not a colour" in path.json()["error"]


def test_an_upload_over_the_cap_is_413(http: httpx.Client) -> None:
    big = {"file": ("big.jpg", b"\xff\xd8\xff" + bytes(UPLOAD_CAP), "image/jpeg")}
    answer = http.post("/api/remove", files=big)
    assert answer.status_code == 413
    assert answer.json() == {
        "error": f"larger than the limit of {UPLOAD_CAP} bytes (CUTOUT_INLINE_MAX_BYTES)",
        "file": "big.jpg",
    }
    # A body far past the cap is refused from its Content-Length, before it is read.
    huge = http.post("/api/remove", content=bytes(3 * 1024 * 1024))
    assert huge.status_code == 413


def test_a_job_not_done_in_time_is_504_with_its_id(idle_gateway: RunningGateway) -> None:
    with httpx.Client(base_url=idle_gateway.url, timeout=30) as http:
        answer = http.post("/api/remove", files=upload())
        assert answer.status_code == 504
        body = answer.json()
        assert body["state"] == "queued" and answer.headers["location"] == body["links"]["self"]
        record = http.get(body["links"]["self"]).json()
        assert record["id"] == body["id"] and record["state"] == "queued"
        not_yet = http.get(body["links"]["result"])
        assert not_yet.status_code == 404 and not_yet.json()["state"] == "queued"


# --- the job API and the events ------------------------------------------------------------


def test_jobs_are_queued_followed_and_their_results_fetched(http: httpx.Client) -> None:
    first = http.post("/api/jobs", files=upload())
    assert first.status_code == 202, first.text
    record = first.json()
    assert record["state"] in STATES and record["input"] == "chelsea.jpg"
    assert first.headers["location"] == record["links"]["self"] == f"/api/jobs/{record['id']}"
    second = http.post("/api/jobs", files=upload(), data={"format": "webp", "crop": "true"})

    done = wait_done(http, record["id"])
    assert done["state"] == "succeeded" and done["has_bytes"]
    assert http.get(record["links"]["self"]).json()["state"] == "succeeded"
    result = http.get(record["links"]["result"])
    assert result.headers["content-type"] == "image/png" and png(result.content).mode == "RGBA"

    assert wait_done(http, second.json()["id"])["state"] == "succeeded"
    webp = http.get(second.json()["links"]["result"])
    assert webp.headers["content-type"] == "image/webp"
    assert 'filename="chelsea.webp"' in webp.headers["content-disposition"]

    archive = http.post("/api/results.zip", json={"ids": [record["id"], second.json()["id"]]})
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert zf.namelist() == ["chelsea.png", "chelsea.webp"]
        assert zf.read("chelsea.png") == result.content

    recent = http.get("/api/jobs", params={"limit": 5}).json()["jobs"]
    assert record["id"] in [job["id"] for job in recent]
    assert http.get("/api/jobs/no-such-job").status_code == 404


def test_a_failed_jobs_result_is_409_with_the_error(http: httpx.Client, tmp_path: Path) -> None:
    job = http.post("/api/jobs", files=upload(broken_jpeg(tmp_path))).json()
    assert wait_done(http, job["id"])["state"] == "failed"
    answer = http.get(job["links"]["result"])
    assert answer.status_code == 409
    body = answer.json()
    assert body["file"] == "half.jpg" and body["error"] and body["state"] == "failed"


def test_the_event_stream_shows_every_change_and_replays_what_was_missed(
    http: httpx.Client,
) -> None:
    with http.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        job = http.post("/api/jobs", files=upload(PHOTOS / "coffee.jpg")).json()
        seen: list[tuple[str, str]] = []
        for event in server_sent_events(stream):
            record = json.loads(event.get("data", "null") or "null")
            if event.get("event") == "job" and record["id"] == job["id"]:
                seen.append((event["id"], record["state"]))
                if record["state"] == "succeeded":
                    break
    assert [state for _, state in seen] == ["queued", "started", "succeeded"]
    # Back after losing the connection: what came after the last event seen, again.
    replay = {"Last-Event-ID": seen[0][0]}
    with http.stream("GET", "/api/events", params={"id": job["id"]}, headers=replay) as stream:
        again = []
        for event in server_sent_events(stream):
            if event.get("event") == "job":
                again.append((event["id"], json.loads(event["data"])["state"]))
                if again[-1][1] == "succeeded":
                    break
    assert again == seen[1:]


# --- security and operations ---------------------------------------------------------------


def test_every_api_route_asks_for_the_token_and_the_page_does_not(
    gateway: RunningGateway,
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as anonymous:
        for method, path in [
            ("POST", "/api/remove"),
            ("POST", "/api/jobs"),
            ("GET", "/api/jobs/x"),
            ("GET", "/api/jobs/x/result"),
            ("GET", "/api/events"),
            ("GET", "/metrics"),
        ]:
            answer = anonymous.request(method, path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"].startswith("Bearer")
        wrong = anonymous.get("/api/jobs", headers={"Authorization": "Bearer wrong-token-123456"})
        assert wrong.status_code == 401 and "token" in wrong.json()["error"]
        assert anonymous.get("/").status_code == 200
        docs = anonymous.get("/openapi.json").json()
        assert {"/api/remove", "/api/jobs", "/api/events"} <= set(docs["paths"])
        assert anonymous.get("/docs").status_code == 200


def test_metrics_count_requests_by_route_and_status(http: httpx.Client) -> None:
    http.get("/api/jobs/absent")
    text = http.get("/metrics").text
    assert 'cutout_http_requests_total{method="GET",route="/api/jobs/{job_id}",status="404"}' in (
        text
    )
    assert (
        'cutout_http_request_seconds_bucket{le="0.05",method="GET",route="/api/jobs/{job_id}"}'
        in (text)
    )
    assert "cutout_http_event_streams " in text


def test_health_knows_the_gateway(gateway: RunningGateway, worker: Worker) -> None:
    env = {k: v for k, v in worker.env.items() if k.startswith("CUTOUT_")}
    result = CliRunner().invoke(cli, ["health", "--gateway", "--no-worker", "--json"], env=env)
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)["checks"]
    (check,) = [c for c in checks if c["name"] == "gateway" and gateway.url in c["detail"]]
    assert check["ok"] and "token" in check["detail"]


def test_twenty_concurrent_removals_are_all_answered(
    gateway: RunningGateway, worker: Worker
) -> None:
    """A tiny run of bench/gateway.py's measurement on this gateway, with the issue's burst
    of 20 concurrent `POST /api/remove` calls: every one gets its image back."""
    from bench.gateway import measure

    figures = measure(gateway.url, worker.settings, CAT, rounds=1, burst=20, token=TOKEN, warm=0)
    assert figures["burst_answered"] == 20
    assert figures["gateway_p50_s"] > 0 and figures["direct_p50_s"] > 0


def test_the_readmes_javascript_example_works_as_written(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """The `fetch` example of README "The HTTP gateway", run by Node.js against this gateway."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("<!-- js-fetch -->\n```js\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.mjs").write_text(code.replace("http://127.0.0.1:7000/", gateway.url))
    shutil.copy(CAT, tmp_path / "photo.jpg")
    env = {**os.environ, "CUTOUT_HTTP_TOKEN": TOKEN}
    node = shutil.which("node")
    assert node, "install Node.js (apt-get install nodejs): the README's example runs on it"
    done = subprocess.run(
        [node, "example.mjs"], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    with Image.open(tmp_path / "photo.png") as result:
        corner = result.convert("RGBA").getpixel((0, 0))
        assert result.format == "PNG" and corner[3] == 255 and min(corner) >= 250  # white


# --- the page, in a real browser -----------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")  # the distribution's (apt-get install chromium)
WATCH_STATES = """() => {
  window.seenStates = [];
  new MutationObserver((changes) => {
    for (const change of changes) window.seenStates.push(change.target.dataset.state);
  }).observe(document.querySelector("#jobs"), {
    subtree: true, attributes: true, attributeFilter: ["data-state"],
  });
}"""


def test_the_page_in_a_real_browser(gateway: RunningGateway, tmp_path: Path) -> None:
    """Headless Chromium driven by Playwright: the token asked once, an image dropped, its
    progress shown, the cut-out shown over the checkerboard and downloaded, then all as a
    zip. Any script error on the page fails the test."""
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), "install the distribution's browser: apt-get install chromium"
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(gateway.url)
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            expect(page.locator("#connection")).to_have_text("live")
            page.reload()  # the token is kept: not asked again
            expect(page.locator("#connection")).to_have_text("live")
            expect(page.locator("#token-form")).to_be_hidden()

            page.select_option("#format", "webp")
            page.evaluate(WATCH_STATES)
            page.set_input_files("#files", str(CAT))
            card = page.locator(".job").first
            expect(card).to_have_attribute("data-state", "succeeded", timeout=60_000)
            expect(card.locator(".cutout")).to_be_visible()
            assert card.locator(".cutout").evaluate("image => image.naturalWidth") > 0
            states = page.evaluate("window.seenStates")
            assert states[0] == "uploading" and states[-1] == "succeeded", states
            assert {"queued", "started"} & set(states), states
            expect(card.locator(".steps li.reached")).to_have_count(3)

            with page.expect_download() as one:
                card.locator(".download").click()
            assert one.value.suggested_filename == "chelsea.webp"
            assert Path(one.value.path()).read_bytes()[8:12] == b"WEBP"
            with page.expect_download() as everything:
                page.click("#download-all")
            with zipfile.ZipFile(everything.value.path()) as zf:
                assert zf.namelist() == ["chelsea.webp"]
        finally:
            browser.close()
    assert not errors, errors
