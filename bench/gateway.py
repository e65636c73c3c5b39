"""What the HTTP gateway costs: `cutout up --http` (private Redis, worker, gateway), then

- a burst of concurrent `POST /api/remove` calls (20 by default): every one answered;
- the added latency: a small image through `POST /api/remove`, and the same image through
  the Client directly (`submit_bytes` + `wait`, the queued path without HTTP), alternating
  in one run so that a busy spell hits both; p50 of each, their difference and ratio;
- the gateway process's peak RSS.

    python -m bench.gateway [--model u2netp] [--rounds 30] [--burst 20]   (make bench-gateway)

Prints a table with the issue's bounds and writes bench/out/gateway.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench import queued
from cutout_cli.supervisor import free_port
from settings import Settings, load_settings
from worker.client import Client

ROOT = Path(__file__).resolve().parents[1]
SMALL_IMAGE = ROOT / "tests" / "data" / "photos" / "chelsea.jpg"  # 451x300, 35 KB
OUT = ROOT / "bench" / "out"
WARM_CALLS = 4  # untimed: each pool process loads its model on its first job
START_TIMEOUT = 120.0
# The bounds (README "Performance").
MAX_ADDED_P50_S = 0.050
MAX_RSS_MB = 150.0


def measure(
    url: str,
    settings: Settings,
    image: Path,
    *,
    rounds: int,
    burst: int,
    token: str | None = None,
    warm: int = WARM_CALLS,
) -> dict[str, Any]:
    """The figures for a running gateway at `url` whose queue `settings` reach."""
    data = image.read_bytes()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=burst + 1)
    with (
        httpx.Client(base_url=url, headers=headers, timeout=300, limits=limits) as http,
        Client.from_settings(settings) as client,
    ):

        def through_gateway() -> float:
            started = time.perf_counter()
            answer = http.post("/api/remove", files={"file": (image.name, data)})
            answer.raise_for_status()
            return time.perf_counter() - started

        def direct() -> float:
            started = time.perf_counter()
            job_id = client.submit_bytes(data, name=image.name)
            if client.wait(job_id, timeout=300).data is None:
                raise RuntimeError(f"job {job_id} gave no result")
            return time.perf_counter() - started

        for _ in range(warm):
            through_gateway()
        gateway_s: list[float] = []
        direct_s: list[float] = []
        for i in range(rounds):  # alternating, each going first every other round
            pair = (through_gateway, direct) if i % 2 == 0 else (direct, through_gateway)
            for run in pair:
                (gateway_s if run is through_gateway else direct_s).append(run())
        answered, burst_s = _burst(http, image.name, data, burst)
    gateway_p50, direct_p50 = statistics.median(gateway_s), statistics.median(direct_s)
    return {
        "image": image.name,
        "image_bytes": len(data),
        "rounds": rounds,
        "gateway_p50_s": gateway_p50,
        "direct_p50_s": direct_p50,
        "added_p50_s": gateway_p50 - direct_p50,
        "ratio_p50": gateway_p50 / direct_p50,
        "burst": burst,
        "burst_answered": answered,
        "burst_seconds": burst_s,
    }


def _burst(http: httpx.Client, name: str, data: bytes, count: int) -> tuple[int, float]:
    """`count` calls at once: how many got their image back, and the seconds for all."""

    def call(_: int) -> bool:
        answer = http.post("/api/remove", files={"file": (name, data)})
        return answer.status_code == 200 and answer.headers["content-type"].startswith("image/")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        answered = sum(pool.map(call, range(count)))
    return answered, time.perf_counter() - started


def rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident set of a process, MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0]) * 1024 / 1e6
    return found["VmHWM"], found["VmRSS"]


def wait_for_gateway(url: str, svc: queued.Service, log: Path) -> int:
    """The gateway's pid, once it answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if svc.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the gateway did not answer at {url}; see {log}")
        time.sleep(0.2)
    found = re.search(r"started gateway \(pid (\d+)\)", log.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no gateway pid in {log}")
    return int(found.group(1))


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("burst of POST /api/remove answered", figures["burst_answered"], figures["burst"], "=="),
        ("gateway added latency p50 (ms)", figures["added_p50_s"] * 1000, 50.0, "<="),
        ("gateway p50 / direct p50 (x)", figures["ratio_p50"], None, ""),
        ("gateway peak RSS (MB)", figures["gateway_peak_rss_mb"], MAX_RSS_MB, "<="),
    ]
    lines = ["| measure | value | bound | holds |", "|---|---|---|---|"]
    for name, value, bound, rule in rows:
        holds = "" if bound is None else ("yes" if _holds(value, bound, rule) else "NO")
        shown = "-" if bound is None else f"{bound:g}"
        lines.append(f"| {name} | {value:.3f} | {shown} | {holds} |")
    lines.append(
        f"\ngateway p50 {figures['gateway_p50_s'] * 1000:.1f} ms, direct p50 "
        f"{figures['direct_p50_s'] * 1000:.1f} ms over {figures['rounds']} rounds each "
        f"({figures['image']}, {figures['image_bytes']} bytes, model {figures['model']}); "
        f"burst of {figures['burst']} in {figures['burst_seconds']:.1f} s"
    )
    return "\n".join(lines)


def _holds(value: float, bound: float, rule: str) -> bool:
    return value == bound if rule == "==" else value <= bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--image", type=Path, default=SMALL_IMAGE)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="cutout-gateway-bench-") as folder:
        root = Path(folder) / "service"
        env = {"CUTOUT_HTTP_PORT": str(port), "CUTOUT_HTTP_WAIT_SECONDS": "300"}
        log = Path(folder) / "up.log"
        with queued.service(root, args.model, log, args=("--http",), env=env) as svc:
            pid = wait_for_gateway(url, svc, log)
            settings = load_settings(
                broker_url=svc.env["CUTOUT_BROKER_URL"],
                result_backend=svc.env["CUTOUT_RESULT_BACKEND"],
            )
            figures = measure(url, settings, args.image, rounds=args.rounds, burst=args.burst)
            peak, now = rss_mb(pid)
    figures |= {"model": args.model, "gateway_peak_rss_mb": peak, "gateway_rss_mb": now}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gateway.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(table(figures))


if __name__ == "__main__":
    main()
