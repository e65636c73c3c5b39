"""The watch folder for real: watchdog on real folders, a real worker, Redis and model.

Every test ends with the same check: each input ended exactly once, as an output (input in
done) or in the failed folder with its reason, and nothing is left in flight.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import CAT
from tests.redis_server import free_port
from tests.service import WatchFolders, Worker, make_worker, start_watcher
from watcher.daemon import WatchConfig, Watcher
from worker.client import Client
from worker.naming import fit_name


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("watch")


@pytest.fixture(scope="module")
def worker(base: Path, redis_url: str, model_path: Path) -> Iterator[Worker]:
    w = make_worker(base / "worker", redis_url, model_path.parent, CUTOUT_ALLOWED_ROOTS=str(base))
    w.start(concurrency=2)
    yield w
    w.stop()


@pytest.fixture
def folders(base: Path, request: pytest.FixtureRequest) -> WatchFolders:
    return WatchFolders(base / request.node.name.replace("[", "-").replace("]", ""))


@pytest.fixture(scope="module")
def small_cat(base: Path) -> Path:
    """A small real photo: a hundred of them go through u2netp in seconds."""
    path = base / "small_cat.jpg"
    with Image.open(CAT) as image:
        image.resize((120, 84)).save(path, quality=90)
    return path


def put(folders: WatchFolders, names: list[str], source: Path) -> None:
    """Copy `source` into the inbox under each name, making folders as needed."""
    for name in names:
        (folders.inbox / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folders.inbox / name)


def files_under(folder: Path) -> list[str]:
    """Visible files under folder; os.walk shrugs off folders vanishing mid-walk."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(top).relative_to(folder)
        found += [(rel / n).as_posix() for n in names if not n.startswith(".")]
    return sorted(found)


def wait_until_settled(
    folders: WatchFolders,
    good: list[str],
    bad: list[str],
    timeout: float = 120,
    *,
    failed: list[str] | None = None,
    outputs: list[str] | None = None,
) -> None:
    """Every good input has one output (`outputs` where given) and sits in done; every bad
    one is in failed with its reason (or failed/ holds exactly `failed`); the inbox and the
    claims are empty."""
    expected_out = sorted(outputs or (Path(g).with_suffix(".png").as_posix() for g in good))
    expected_failed = sorted(failed or [*bad, *(f"{b}.error.json" for b in bad)])
    deadline = time.monotonic() + timeout
    while True:
        state = (
            files_under(folders.outbox),
            files_under(folders.done),
            files_under(folders.failed),
            files_under(folders.inbox),
            os.listdir(claims) if (claims := folders.inbox / ".cutout-claims").is_dir() else [],
        )
        if state == (expected_out, sorted(good), expected_failed, [], []):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not settled: outbox={len(state[0])}/{len(expected_out)} "
                f"done={len(state[1])}/{len(good)} failed={state[2]} inbox={state[3][:5]} "
                f"claims={len(state[4])}; extra outputs: "
                f"{sorted(set(state[0]) - set(expected_out))[:5]}"
            )
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_dropped_file_comes_out_once_and_input_moves_to_done(
    worker: Worker, folders: WatchFolders, mode: str
) -> None:
    # No rescan within the test: only the observer can see the file.
    watcher = start_watcher(
        worker,
        folders,
        CUTOUT_WATCH_MODE=mode,
        CUTOUT_POLL_SECONDS="0.3",
        CUTOUT_RESCAN_SECONDS="600",
    )
    try:
        shutil.copy(CAT, folders.inbox / "dog.jpg")
        wait_until_settled(folders, ["dog.jpg"], [])
        with Image.open(folders.outbox / "dog.png") as out:
            assert out.mode == "RGBA" and out.size == (451, 300)
        assert (folders.done / "dog.jpg").read_bytes() == CAT.read_bytes()
    finally:
        assert watcher.stop() == 0
    assert "done dog.jpg -> " in watcher.text()
    assert f"({mode})" in watcher.text()


def test_finished_file_skips_the_settle_time(worker: Worker, folders: WatchFolders) -> None:
    # Settle time 60 s: only the writer's close (or a rename into place) with the image's
    # end bytes present can let these through within the test's time.
    watcher = start_watcher(worker, folders, CUTOUT_SETTLE_SECONDS="60")
    try:
        started = time.monotonic()
        shutil.copy(CAT, folders.inbox / "copied.jpg")
        shutil.copy(CAT, folders.inbox / ".renamed.jpg.tmp")
        os.rename(folders.inbox / ".renamed.jpg.tmp", folders.inbox / "renamed.jpg")
        (folders.inbox / "cut.jpg").write_bytes(CAT.read_bytes()[:5000])  # closed, not whole
        while files_under(folders.done) != ["copied.jpg", "renamed.jpg"]:
            assert time.monotonic() - started < 45, files_under(folders.done)
            time.sleep(0.1)
        assert files_under(folders.outbox) == ["copied.png", "renamed.png"]
        assert files_under(folders.inbox) == ["cut.jpg"]  # still waiting its settle time
    finally:
        watcher.stop()


def copy_paused_before_chmod(source: Path, target: Path) -> None:
    """shutil.copy with its writer descheduled between the close and the chmod, as on a
    busy machine: the pause is the writer's, the race is what is tested."""
    shutil.copyfile(source, target)
    time.sleep(0.15)
    shutil.copymode(source, target)


def run_tool(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, (argv, done.stderr.decode(errors="replace"))


# Each writer as people feed an inbox; none may ever see an error, and every file comes out
# whole. The Python ones set the mode (copy2: the times too) by path after the close.
WRITERS: dict[str, Callable[[Path, Path], object]] = {
    "shutil.copy": shutil.copy,
    "shutil.copy2": shutil.copy2,
    "shutil.copy, paused": copy_paused_before_chmod,
    "cp -p": lambda s, t: run_tool("cp", "-p", str(s), str(t)),
    "rsync": lambda s, t: run_tool("rsync", str(s), str(t)),  # a temp name, then a rename
    "vim": lambda s, t: run_tool(
        "vim", "-u", "NONE", "-i", "NONE", "-n", "-es", "-b", str(s), "-c", f"w {t}", "-c", "q!"
    ),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_no_writer_sees_its_file_taken_before_it_is_done(
    worker: Worker, folders: WatchFolders, small_cat: Path, writer: str
) -> None:
    source = folders.root / "source.jpg"
    shutil.copyfile(small_cat, source)
    source.chmod(0o640)  # so that copying the mode changes something
    # Twelve each: a race window hit now and then shows; the paused writer hits it always.
    names = [f"{i}.jpg" for i in range(12 if "paused" not in writer else 6)]
    watcher = start_watcher(worker, folders, CUTOUT_SETTLE_SECONDS="2")
    try:
        for name in names:
            WRITERS[writer](source, folders.inbox / name)  # raises if the file was taken
        wait_until_settled(folders, names, [])
    finally:
        watcher.stop()
    for name in names:
        assert (folders.done / name).read_bytes() == source.read_bytes(), name


def test_slow_chunked_write_is_taken_once_whole(worker: Worker, folders: WatchFolders) -> None:
    watcher = start_watcher(worker, folders, CUTOUT_SETTLE_SECONDS="0.8")
    try:
        data = CAT.read_bytes()
        with (folders.inbox / "slow.jpg").open("wb") as out:
            for start in range(0, len(data), len(data) // 6 + 1):
                out.write(data[start : start + len(data) // 6 + 1])
                out.flush()
                time.sleep(0.3)
        wait_until_settled(folders, ["slow.jpg"], [])
        assert (folders.done / "slow.jpg").read_bytes() == data
    finally:
        watcher.stop()


def test_a_writer_paused_past_the_settle_time_gets_its_whole_file_processed(
    worker: Worker, folders: WatchFolders
) -> None:
    watcher = start_watcher(worker, folders, CUTOUT_SETTLE_SECONDS="0.5")
    data = CAT.read_bytes()
    try:
        with (folders.inbox / "paused.jpg").open("wb") as out:
            out.write(data[: len(data) // 2])
            out.flush()
            # The writer stalls (a slow share, a laptop lid): the file settles, is taken,
            # and its job fails on half an image. The writer still holds it open.
            deadline = time.monotonic() + 60
            while "still being written" not in watcher.text():
                assert time.monotonic() < deadline, watcher.text()[-2000:]
                time.sleep(0.05)
            out.write(data[len(data) // 2 :])
        wait_until_settled(folders, ["paused.jpg"], [])
    finally:
        watcher.stop()
    assert (folders.done / "paused.jpg").read_bytes() == data
    assert "whole now; sending it again" in watcher.text()


def test_renamed_into_place_temp_names_and_hidden_files_ignored(
    worker: Worker, folders: WatchFolders
) -> None:
    watcher = start_watcher(worker, folders)
    try:
        for name in ("photo.jpg.part", "big.crdownload", ".hidden.jpg", "~$lock.jpg"):
            shutil.copy(CAT, folders.inbox / name)
        time.sleep(1.5)
        os.rename(folders.inbox / "photo.jpg.part", folders.inbox / "photo.jpg")
        deadline = time.monotonic() + 60
        while not (folders.done / "photo.jpg").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        assert files_under(folders.outbox) == ["photo.png"]
        assert files_under(folders.failed) == []
        assert sorted(p.name for p in folders.inbox.iterdir() if p.is_file()) == [
            ".hidden.jpg",
            "big.crdownload",
            "~$lock.jpg",
        ]
    finally:
        watcher.stop()


def test_nested_unicode_and_spaces_mirrored(worker: Worker, folders: WatchFolders) -> None:
    names = ["shop/shoes/été rouge 1.jpg", "shop/bags/日本 bag.jpg", "a b/c d/e f.jpg"]
    watcher = start_watcher(worker, folders)
    try:
        put(folders, names, CAT)
        wait_until_settled(folders, names, [])
    finally:
        watcher.stop()


def test_broken_input_goes_to_failed_with_its_reason(worker: Worker, folders: WatchFolders) -> None:
    watcher = start_watcher(worker, folders)
    try:
        (folders.inbox / "sub").mkdir()
        (folders.inbox / "sub" / "broken.jpg").write_bytes(CAT.read_bytes()[:1500])
        (folders.inbox / "notes.txt").write_text("not an image")
        shutil.copy(CAT, folders.inbox / "good.jpg")
        wait_until_settled(folders, ["good.jpg"], ["notes.txt", "sub/broken.jpg"])
        note = json.loads((folders.failed / "sub" / "broken.jpg.error.json").read_text())
        # Named as the user knows it (its path in the inbox), not by the claim's inner path.
        assert note["error"].startswith("sub/broken.jpg: truncated"), note["error"]
        assert note["job_id"] and note["time"] and note["attempts"] == 1
        with Client.from_settings(worker.settings) as client:
            record = client.status.get(note["job_id"])
        assert record is not None and record.input == "sub/broken.jpg"
        # Not an image by its name: failed by the watcher itself, saying which names are.
        text = json.loads((folders.failed / "notes.txt.error.json").read_text())
        assert text["error"].startswith("notes.txt: not an image (accepted names end in .jpg")
    finally:
        watcher.stop()


def test_no_drop_takes_another_ones_output_archive_or_failure(
    worker: Worker, folders: WatchFolders, small_cat: Path
) -> None:
    """Cameras repeat names: each drop is its own input, with its own output and archive;
    a stem shared by two formats, and two broken files of one name, likewise."""
    flipped = folders.root / "flipped.jpg"
    with Image.open(small_cat) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    watcher = start_watcher(worker, folders)

    def drop_and_wait(name: str, source: Path | bytes, outputs: list[str]) -> None:
        target = folders.inbox / name
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copy(source, target)
        deadline = time.monotonic() + 60
        while files_under(folders.outbox) != outputs or files_under(folders.inbox):
            assert time.monotonic() < deadline, (files_under(folders.outbox), outputs)
            time.sleep(0.1)

    try:
        drop_and_wait("dup.jpg", small_cat, ["dup.png"])
        drop_and_wait("dup.jpg", flipped, ["dup (2).png", "dup.png"])  # after the first ended
        drop_and_wait("dup.png", small_cat, ["dup (2).png", "dup (3).png", "dup.png"])
        drop_and_wait("bad.jpg", b"not an image", ["dup (2).png", "dup (3).png", "dup.png"])
        drop_and_wait("bad.jpg", b"nor this", ["dup (2).png", "dup (3).png", "dup.png"])
        # The same name again while the first is still in flight.
        shutil.copy(small_cat, folders.inbox / "twin.jpg")
        deadline = time.monotonic() + 30
        while (folders.inbox / "twin.jpg").exists():  # claimed: its job is on its way
            assert time.monotonic() < deadline
            time.sleep(0.01)
        shutil.copy(flipped, folders.inbox / "twin.jpg")
        wait_until_settled(
            folders,
            ["dup.jpg", "dup (2).jpg", "dup.png", "twin.jpg", "twin (2).jpg"],
            BAD,
            outputs=["dup.png", "dup (2).png", "dup (3).png", "twin.png", "twin (2).png"],
        )
    finally:
        watcher.stop()
    assert (folders.done / "dup.jpg").read_bytes() == small_cat.read_bytes()
    assert (folders.done / "dup (2).jpg").read_bytes() == flipped.read_bytes()
    first, second = (load_rgba(folders.outbox / n) for n in ("dup.png", "dup (2).png"))
    assert second.tobytes() != first.tobytes()  # each drop's own cut-out
    notes = [
        json.loads((folders.failed / f"{n}.error.json").read_text())
        for n in ("bad.jpg", "bad (2).jpg")
    ]
    assert notes[0]["job_id"] != notes[1]["job_id"]


BAD = ["bad.jpg", "bad (2).jpg"]


def load_rgba(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGBA")


def test_files_present_before_start_and_a_burst_of_120(
    worker: Worker, folders: WatchFolders, small_cat: Path
) -> None:
    early = [f"early/{i}.jpg" for i in range(5)]
    # 120 in three folders: enough to queue far ahead of two worker processes; the soak
    # (tests/soak, `make soak`) throws hundreds.
    burst = [f"burst/{i // 40}/{i}.jpg" for i in range(120)]
    put(folders, early, small_cat)
    watcher = start_watcher(worker, folders)
    try:
        put(folders, burst, small_cat)
        wait_until_settled(folders, early + burst, [], timeout=240)
    finally:
        watcher.stop()


def test_watcher_killed_and_restarted_mid_burst(
    worker: Worker, folders: WatchFolders, small_cat: Path
) -> None:
    names = [f"{i}.jpg" for i in range(60)]
    watcher = start_watcher(worker, folders)
    for name in names:
        shutil.copy(small_cat, folders.inbox / name)
    deadline = time.monotonic() + 60
    while len(files_under(folders.done)) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    watcher.stop(signal.SIGKILL)
    again = start_watcher(worker, folders)
    try:
        wait_until_settled(folders, names, [], timeout=180)
    finally:
        again.stop()


def test_worker_killed_mid_burst(worker: Worker, folders: WatchFolders, small_cat: Path) -> None:
    names = [f"{i}.jpg" for i in range(40)]
    watcher = start_watcher(worker, folders)
    try:
        for name in names:
            shutil.copy(small_cat, folders.inbox / name)
        deadline = time.monotonic() + 60
        while len(files_under(folders.done)) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for pid in worker.children():
            os.kill(pid, signal.SIGKILL)
        wait_until_settled(folders, names, [], timeout=180)
    finally:
        watcher.stop()


def test_two_watchers_on_one_folder(worker: Worker, folders: WatchFolders, small_cat: Path) -> None:
    names = [f"{i}.jpg" for i in range(60)]
    first = start_watcher(worker, folders)
    second = start_watcher(worker, folders)
    try:
        for name in names:
            shutil.copy(small_cat, folders.inbox / name)
        wait_until_settled(folders, names, [], timeout=180)
        finished = first.text().count("done ") + second.text().count("done ")
        assert finished >= len(names)
    finally:
        first.stop()
        second.stop()


def in_process_watcher(
    worker: Worker, folders: WatchFolders, client: Client, **config: object
) -> Watcher:
    options: dict[str, object] = {
        "settle_seconds": 0.2,
        "rescan_seconds": 1.0,
        "stale_after": 240.0,
    } | config
    return Watcher(
        WatchConfig(
            inbox=folders.inbox,
            outbox=folders.outbox,
            failed_dir=folders.failed,
            done_dir=folders.done,
            **options,  # type: ignore[arg-type]
        ),
        client,
    )


@pytest.fixture
def client(worker: Worker) -> Iterator[Client]:
    with Client.from_settings(worker.settings) as c:
        yield c


def run_in_thread(watcher: Watcher) -> threading.Thread:
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return thread


def test_claim_whose_job_is_gone_is_sent_again(
    worker: Worker, folders: WatchFolders, client: Client
) -> None:
    # As after a Redis restart without persistence: a claimed file, no record, no message.
    claim = folders.inbox / ".cutout-claims" / str(uuid.uuid4()) / "lost" / "dog.jpg"
    claim.parent.mkdir(parents=True)
    shutil.copy(CAT, claim)
    old = time.time() - 120
    os.utime(claim.parents[1], (old, old))
    watcher = in_process_watcher(worker, folders, client)
    thread = run_in_thread(watcher)
    try:
        wait_until_settled(folders, ["lost/dog.jpg"], [])
    finally:
        watcher.stop()
        thread.join(timeout=10)


def test_back_pressure_stops_claiming_until_the_queue_drains(
    worker: Worker, folders: WatchFolders, small_cat: Path
) -> None:
    # A queue no worker reads: nothing drains, so the watcher must stop at max_pending.
    stalled = make_worker(
        folders.root / "stalled", worker.settings.broker_url, Path("/nonexistent")
    )
    settings = stalled.settings.model_copy(update={"queue": "nobody-listens"})
    names = [f"{i}.jpg" for i in range(12)]
    for name in names:
        shutil.copy(small_cat, folders.inbox / name)
    with Client.from_settings(settings) as stalled_client:
        watcher = in_process_watcher(worker, folders, stalled_client, max_pending=4)
        thread = run_in_thread(watcher)
        try:
            time.sleep(3)
            claimed = list((folders.inbox / ".cutout-claims").glob("*"))
            assert len(claimed) == 4
            assert len(files_under(folders.inbox)) == 8
        finally:
            watcher.stop()
            thread.join(timeout=10)


def test_keep_mode_leaves_input_and_never_takes_it_twice(
    worker: Worker, folders: WatchFolders
) -> None:
    watcher = start_watcher(worker, folders, CUTOUT_ON_SUCCESS="keep")
    try:
        shutil.copy(CAT, folders.inbox / "kept.jpg")
        deadline = time.monotonic() + 60
        while "done kept.jpg" not in watcher.text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(5)  # two rescans
        assert watcher.text().count("done kept.jpg") == 1
        assert files_under(folders.inbox) == ["kept.jpg"]
        assert files_under(folders.outbox) == ["kept.png"]
    finally:
        watcher.stop()


def test_delete_mode_removes_input(worker: Worker, folders: WatchFolders) -> None:
    watcher = start_watcher(worker, folders, CUTOUT_ON_SUCCESS="delete")
    try:
        shutil.copy(CAT, folders.inbox / "gone.jpg")
        deadline = time.monotonic() + 60
        while "done gone.jpg" not in watcher.text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert files_under(folders.inbox) == [] and files_under(folders.done) == []
        assert files_under(folders.outbox) == ["gone.png"]
    finally:
        watcher.stop()


def test_watcher_metrics(worker: Worker, folders: WatchFolders) -> None:
    port = free_port()
    watcher = start_watcher(worker, folders, CUTOUT_WATCHER_METRICS_PORT=str(port))
    try:
        shutil.copy(CAT, folders.inbox / "counted.jpg")
        wait_until_settled(folders, ["counted.jpg"], [])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        watcher.stop()
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(samples["cutout_watcher_files_seen_total"]) >= 1
    assert float(samples["cutout_watcher_files_claimed_total"]) == 1
    assert float(samples['cutout_watcher_files_finished_total{outcome="succeeded"}']) == 1
    assert float(samples["cutout_watcher_jobs_in_flight"]) == 0
    assert float(samples["cutout_watcher_settle_seconds_count"]) == 1


def test_file_name_that_is_not_utf8_fails_alone_with_its_reason(
    worker: Worker, folders: WatchFolders
) -> None:
    watcher = start_watcher(worker, folders)
    try:
        raw = os.fsencode(folders.inbox) + b"/caf\xe9.jpg"  # Latin-1 bytes from an old share
        with open(raw, "wb") as out:
            out.write(CAT.read_bytes())
        shutil.copy(CAT, folders.inbox / "fine.jpg")
        bad = os.fsdecode(b"caf\xe9.jpg")
        wait_until_settled(folders, ["fine.jpg"], [bad])
        note = json.loads((folders.failed / f"{bad}.error.json").read_text())
        assert "unicode" in note["error"] or "UTF-8" in note["error"]
        assert watcher.process.poll() is None  # still watching
    finally:
        watcher.stop()


def test_names_as_long_as_a_folder_allows_end_alone(
    worker: Worker, folders: WatchFolders, small_cat: Path
) -> None:
    # 249 bytes: its `.error.json` would be 260, more than any file system takes in a name.
    broken = "b" * 245 + ".jpg"
    good = ["g" * 251 + ".jpg", "猫" * 83 + ".jpg", "after.jpg"]  # 255, 253 bytes, short
    watcher = start_watcher(worker, folders)
    try:
        (folders.inbox / broken).write_bytes(b"not an image at all")
        for name in good:
            shutil.copy(small_cat, folders.inbox / name)
        note_name = fit_name(broken, ".error.json")
        wait_until_settled(folders, good, [], failed=[broken, note_name])
        assert watcher.process.poll() is None  # still watching
    finally:
        watcher.stop()
    assert len(os.fsencode(note_name)) == 255 and note_name.endswith(".error.json")
    note = json.loads((folders.failed / note_name).read_text())
    assert note["input"] == broken and "b" * 20 in note["error"]


def test_no_symlink_leads_a_file_out_of_the_folders_or_in(
    worker: Worker, folders: WatchFolders, small_cat: Path
) -> None:
    outside = folders.root / "elsewhere"
    for name in ("done", "failed", "claims", "inbox"):
        (outside / name).mkdir(parents=True)
    (outside / "inbox" / "theirs.jpg").write_bytes(small_cat.read_bytes())
    (folders.done / "shop").symlink_to(outside / "done")
    (folders.failed / "shop").symlink_to(outside / "failed")
    (folders.inbox / "linked").symlink_to(outside / "inbox")
    watcher = start_watcher(worker, folders)
    try:
        (folders.inbox / "shop").mkdir()
        shutil.copy(small_cat, folders.inbox / "shop" / "good.jpg")
        (folders.inbox / "shop" / "bad.jpg").write_bytes(b"not an image")
        # Done: its cut-out is made, but done/shop leads out: to failed/, with why; and
        # failed/shop leads out too: both to the top of failed/, with why.
        wait_until_settled(
            folders,
            [],
            [],
            outputs=["shop/good.png"],
            failed=["bad.jpg", "bad.jpg.error.json", "good.jpg", "good.jpg.error.json"],
        )
        good_note = json.loads((folders.failed / "good.jpg.error.json").read_text())["error"]
        assert "not archived" in good_note and "top of the failed folder" in good_note
        # The claims folder swapped for a symlink: nothing moves through it.
        claims = folders.inbox / ".cutout-claims"
        shutil.rmtree(claims, ignore_errors=True)
        claims.symlink_to(outside / "claims")
        shutil.copy(small_cat, folders.inbox / "late.jpg")
        deadline = time.monotonic() + 60
        while not (folders.failed / "late.jpg.error.json").exists():
            assert time.monotonic() < deadline, files_under(folders.failed)
            time.sleep(0.1)
        assert "cannot be claimed" in (folders.failed / "late.jpg.error.json").read_text()
        assert watcher.process.poll() is None  # still watching
    finally:
        watcher.stop()
    assert [p.name for p in (outside / "done").iterdir()] == []
    assert [p.name for p in (outside / "failed").iterdir()] == []
    assert [p.name for p in (outside / "claims").iterdir()] == []
    assert [p.name for p in (outside / "inbox").iterdir()] == ["theirs.jpg"]  # not taken


def test_a_deep_path_is_named_in_full_and_by_its_end_beyond_a_jobs_limit() -> None:
    from watcher.daemon import message_name
    from worker.jobs import INPUT_NAME_MAX

    deep = Path(*(["folder"] * 60), "photo.jpg")  # 429 characters
    assert message_name(deep) == str(deep)
    deeper = Path(*(["folder"] * 700), "photo.jpg")
    name = message_name(deeper)
    assert len(name) == INPUT_NAME_MAX and name.endswith("/folder/photo.jpg")
    assert name.startswith("...")
    assert message_name(Path("shoes/red.jpg")) == "shoes/red.jpg"
