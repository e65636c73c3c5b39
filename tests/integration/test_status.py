"""Job records and events in a real Redis, and `cutout status` as a user runs it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timezone
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from cutout_cli.main import cli
from settings.config import mask_url
from worker.jobs import JobRecord, State
from worker.status import StatusStore

TTL = 60
RESULT_TTL = 30
CONTRACT_FIELDS = {"id", "state", "input", "output", "error"}


def new_id() -> str:
    return str(uuid.uuid4())


def later(delay: float, action: Callable[[], object]) -> threading.Thread:
    """Run `action` from another thread, as a worker would, after `delay` seconds."""

    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def drop_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def store(redis_url: str) -> Iterator[StatusStore]:
    """A store under a prefix of its own, removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    with StatusStore.from_url(redis_url, ttl=TTL, result_ttl=RESULT_TTL, prefix=prefix) as s:
        yield s
        drop_keys(s.client, prefix)


# --- records ---


def test_update_creates_then_merges_fields_and_sets_timestamps(store: StatusStore) -> None:
    job = new_id()
    queued = store.update(job, "queued", input="in/a.jpg", model="u2netp")
    assert queued.created is not None and queued.created.tzinfo == timezone.utc
    assert (queued.started, queued.finished, queued.attempts) == (None, None, 0)

    started = store.update(job, "started", worker="w1")
    assert started.started is not None and started.started >= queued.created
    assert (started.input, started.model, started.created) == ("in/a.jpg", "u2netp", queued.created)

    done = store.update(job, "succeeded", output="out/a.png", duration=0.82)
    assert done.finished is not None and done.finished >= started.started
    assert (done.input, done.worker, done.output, done.duration) == (
        "in/a.jpg",
        "w1",
        "out/a.png",
        0.82,
    )
    assert store.get(job) == done


def test_hash_holds_one_json_field_per_record_field(store: StatusStore) -> None:
    job = new_id()
    store.update(job, "queued", input="a.jpg")
    raw = store.client.hgetall(f"{store.keys.prefix}:job:{job}")
    assert {k.decode() for k in raw} == set(JobRecord.model_fields)
    assert json.loads(raw[b"input"]) == "a.jpg"
    assert json.loads(raw[b"output"]) is None


def test_update_keeps_fields_another_writer_set(store: StatusStore) -> None:
    job = new_id()
    store.update(job, "queued", input="a.jpg")
    store.client.hset(f"{store.keys.prefix}:job:{job}", "worker", json.dumps("other-host"))
    record = store.update(job, "started", model="u2net")
    assert (record.worker, record.model, record.input) == ("other-host", "u2net", "a.jpg")


def test_concurrent_writers_lose_no_start(redis_url: str, store: StatusStore) -> None:
    job = new_id()
    store.update(job, "queued")

    def start_many(worker: str) -> None:
        with StatusStore.from_url(redis_url, ttl=TTL, prefix=store.keys.prefix) as own:
            for _ in range(25):
                own.update(job, "started", worker=worker)

    threads = [later(0, lambda w=w: start_many(w)) for w in ("w1", "w2")]
    for thread in threads:
        thread.join()
    record = store.get(job)
    assert record is not None and record.attempts == 50  # WATCH retried every clash


def test_update_refuses_fields_the_store_keeps(store: StatusStore) -> None:
    with pytest.raises(TypeError, match="attempts"):
        store.update(new_id(), "queued", attempts=5)
    with pytest.raises(TypeError, match="colour"):
        store.update(new_id(), "queued", colour="red")


def test_attempts_count_each_start(store: StatusStore) -> None:
    job = new_id()
    states: tuple[State, ...] = ("queued", "started", "retrying", "started")
    for state in states:
        record = store.update(job, state)
    assert record.attempts == 2
    assert record.finished is None
    assert store.update(job, "failed", error="boom").attempts == 2


def test_keys_expire(store: StatusStore) -> None:
    job = new_id()
    store.update(job, "queued")
    for key in (f"{store.keys.prefix}:job:{job}", f"{store.keys.prefix}:jobs"):
        assert 0 < store.client.ttl(key) <= TTL


def test_every_update_is_an_event(store: StatusStore) -> None:
    job = new_id()
    store.update(job, "queued", input="a.jpg")
    store.update(job, "started")
    entries = store.client.xrange(f"{store.keys.prefix}:events")
    assert [e[b"state"] for _, e in entries] == [b"queued", b"started"]
    assert {e[b"id"].decode() for _, e in entries} == {job}
    assert JobRecord.model_validate_json(entries[-1][1][b"record"]).input == "a.jpg"


def test_get_unknown_is_none(store: StatusStore) -> None:
    assert store.get(new_id()) is None


# --- listing ---


def test_recent_is_newest_first_with_limit_and_state_filter(store: StatusStore) -> None:
    first, second, third = new_id(), new_id(), new_id()
    store.update(first, "failed", error="bad image")
    store.update(second, "queued")
    store.update(third, "succeeded")
    store.update(first, "failed", error="still bad")  # a later change keeps its place

    assert [r.id for r in store.recent()] == [third, second, first]
    assert [r.id for r in store.recent(limit=2)] == [third, second]
    assert [r.id for r in store.recent(state="failed")] == [first]
    assert store.recent(state="retrying") == []


def test_recent_drops_expired_entries_from_the_index(store: StatusStore) -> None:
    kept, expired = new_id(), new_id()
    store.update(kept, "queued")
    store.update(expired, "queued")
    store.client.delete(f"{store.keys.prefix}:job:{expired}")  # what the ttl does, only sooner

    assert [r.id for r in store.recent()] == [kept]
    assert store.client.zscore(f"{store.keys.prefix}:jobs", expired) is None


def test_find_matches_short_ids(store: StatusStore) -> None:
    job = new_id()
    store.update(job, "queued")
    assert store.find(job[:8]) == [job]
    assert store.find("no-such-") == []


# --- events ---


def test_follow_one_job_until_it_is_final(store: StatusStore) -> None:
    job, other = new_id(), new_id()
    store.update(job, "queued")
    changes = store.follow(job, block_ms=100, timeout=5)

    def work() -> None:
        store.update(job, "started")
        store.update(other, "started")
        store.update(job, "succeeded", output="a.png")
        store.update(job, "started")  # after the end: not seen

    thread = later(0.1, work)
    seen = [(r.id, r.state) for r in changes]
    thread.join()
    assert seen == [(job, "started"), (job, "succeeded")]


def test_follow_a_final_job_yields_it_once(store: StatusStore) -> None:
    job = new_id()
    store.update(job, "failed", error="bad")
    assert [r.state for r in store.follow(job, timeout=5)] == ["failed"]


def test_follow_stops_at_the_timeout(store: StatusStore) -> None:
    start = time.monotonic()
    assert list(store.follow(new_id(), block_ms=50, timeout=0.3)) == []
    assert 0.3 <= time.monotonic() - start < 2


def test_follow_everything_from_now(store: StatusStore) -> None:
    before, a, b = new_id(), new_id(), new_id()
    store.update(before, "queued")
    changes = store.follow(block_ms=50, timeout=0.5)
    store.update(a, "queued")
    store.update(b, "started")
    assert [(r.id, r.state) for r in changes] == [(a, "queued"), (b, "started")]


# --- deliveries and results ---


def test_attempts_that_never_ended_are_counted_as_crashes(store: StatusStore) -> None:
    job = new_id()
    assert store.begin_attempt(job) == 0
    store.end_attempt(job)  # a clean end (success, failure, retry) is no crash
    assert store.begin_attempt(job) == 0
    # no end_attempt: the worker died; every next delivery sees one more crash
    assert store.begin_attempt(job) == 1
    assert store.begin_attempt(job) == 2
    assert 0 < store.client.ttl(f"{store.keys.prefix}:crashes:{job}") <= TTL


def test_result_bytes_round_trip_and_expire(store: StatusStore) -> None:
    job = new_id()
    data = bytes(range(256)) * 4
    store.store_result(job, data)
    assert store.fetch_result(job) == data
    assert 0 < store.client.ttl(f"{store.keys.prefix}:result:{job}") <= RESULT_TTL
    assert store.fetch_result(new_id()) is None


# --- the CLI ---


@pytest.fixture
def cli_store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatusStore]:
    """The store `cutout status` reads (default prefix); only this test's jobs are removed."""
    monkeypatch.setenv("CUTOUT_RESULT_BACKEND", redis_url)
    made: list[str] = []
    with StatusStore.from_url(redis_url, prefix="cutout", ttl=TTL) as s:
        original = s.update

        def update(job_id: str, state: State, **fields: object) -> JobRecord:
            made.append(job_id)
            return original(job_id, state, **fields)

        monkeypatch.setattr(s, "update", update)
        yield s
        if made:
            s.client.delete(*(f"cutout:job:{job}" for job in made))
            s.client.zrem("cutout:jobs", *made)


def status(*args: str) -> Result:
    return CliRunner().invoke(cli, ["status", *args], catch_exceptions=False)


def test_table_shows_short_id_state_and_paths(cli_store: StatusStore) -> None:
    job = new_id()
    cli_store.update(job, "failed", input="in/cat.jpg", error="not an image\ndetails")
    result = status()
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if row.startswith(job[:8]))
    assert "failed" in line and "in/cat.jpg" in line and "not an image ..." in line
    assert job not in result.stdout  # short ids only


def test_json_lists_full_records(cli_store: StatusStore) -> None:
    job = new_id()
    cli_store.update(job, "succeeded", input="a.jpg", output="a.png", duration=0.5)
    result = status("--json", "--state", "succeeded")
    records = json.loads(result.stdout)
    mine = next(r for r in records if r["id"] == job)
    assert set(mine) >= CONTRACT_FIELDS
    assert (mine["state"], mine["input"], mine["output"]) == ("succeeded", "a.jpg", "a.png")
    assert {r["state"] for r in records} == {"succeeded"}


def test_one_job_by_full_or_short_id(cli_store: StatusStore) -> None:
    job = new_id()
    cli_store.update(job, "queued", input="a.jpg")
    for given in (job, job[:8]):
        result = status(given, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["id"] == job
    assert job[:8] in status(job).stdout


def test_unknown_job_exits_1(cli_store: StatusStore) -> None:
    job = new_id()
    result = status(job)
    assert result.exit_code == 1
    assert f"no job {job} (unknown, or expired after" in result.stderr


@pytest.mark.parametrize(("end", "code"), [("succeeded", 0), ("failed", 1)])
def test_follow_a_job_until_it_ends(cli_store: StatusStore, end: State, code: int) -> None:
    job = new_id()
    cli_store.update(job, "queued", input="a.jpg")

    def work() -> None:
        cli_store.update(job, "started")
        cli_store.update(job, end, error="bad image" if end == "failed" else None)

    thread = later(0.2, work)
    result = status(job, "--follow", "--json")
    thread.join()
    assert result.exit_code == code, result.output
    states = [json.loads(line)["state"] for line in result.stdout.splitlines()]
    assert states[0] == "queued" and states[-1] == end


def test_follow_a_finished_job_prints_it_and_exits(cli_store: StatusStore) -> None:
    job = new_id()
    cli_store.update(job, "succeeded", output="a.png")
    result = status(job, "--follow")
    assert result.exit_code == 0
    assert "succeeded" in result.stdout and "a.png" in result.stdout


def test_unreachable_redis_exits_3_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOUT_RESULT_BACKEND", "redis://:secret@127.0.0.1:1/0")
    result = status()
    assert result.exit_code == 3
    assert "127.0.0.1:1" in result.stderr and "***" in result.stderr
    assert "secret" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6379/1", "redis://:***@host:6379/1"),
        ("rediss://user:pw@host/0", "rediss://user:***@host/0"),
        ("redis://pw@host/0", "redis://***@host/0"),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=***"),
        (
            "rediss://:pw@host/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem",
            "rediss://:***@host/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem",
        ),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize("down", ["broker", "both"])
def test_submit_to_an_unreachable_broker_is_one_line_and_exit_3(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, down: str
) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not sent anyway")
    monkeypatch.setenv("CUTOUT_BROKER_URL", "redis://:secret@127.0.0.1:1/0")
    if down == "broker":  # the status store answers, the broker does not
        monkeypatch.setenv("CUTOUT_RESULT_BACKEND", redis_url)
    else:
        monkeypatch.delenv("CUTOUT_RESULT_BACKEND", raising=False)
    result = CliRunner().invoke(cli, ["submit", str(image)], catch_exceptions=False)
    assert result.exit_code == 3
    assert result.stderr.startswith("cutout: error: cannot reach Redis at redis://:***@127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1 and "secret" not in result.output


def test_update_if_changes_only_a_record_in_that_state(store: StatusStore) -> None:
    job = new_id()
    assert store.update_if(job, "queued", "failed", error="x") is None  # no record yet
    assert store.get(job) is None
    store.update(job, "queued", input="a.jpg")
    store.update(job, "started")
    assert store.update_if(job, "queued", "failed", error="not queued") is None
    assert store.get(job).state == "started"  # type: ignore[union-attr]
    other = new_id()
    store.update(other, "queued", input="b.jpg")
    changed = store.update_if(other, "queued", "failed", error="not queued")
    assert changed is not None and changed.state == "failed" and changed.input == "b.jpg"
