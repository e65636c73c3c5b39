"""`make bench`: cutout against the model's own limit and against rembg, in one run.

    python -m bench.speed [--quick] [--rounds N] [--model u2net]

Builds the image set (bench/images.py), starts `cutout up` on folders of its own, then runs,
round after round and in a rotating order, each engine on the whole set: the model alone,
`cutout p`, the queued path (`cutout up`), rembg's `remove()` loop and `rembg p` (each but
the queued path in a fresh process). Then it measures the queued path's added latency, the
worker's peak RSS and the idle service's CPU, and checks that our masks are rembg's.

With --precisions (default: bf16 and int8 where OpenVINO is installed) the model alone and
`cutout p` run again at each of them, for their speed against fp32's and rembg's and their
masks against fp32's; a precision the engine refuses for the model is reported, not run.

Prints a Markdown table and the targets of issues 6 and 18, and writes both, with every number,
to bench/out/speed.md and bench/out/speed.json. Times are medians over the rounds; the
load average is recorded with them, since other processes on the machine skew every
number. Nothing here is CPU-specific: on a CUDA machine the same run reports the provider
each engine actually used.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench import images, queued
from bench.children import ENGINES

ROOT = Path(__file__).resolve().parents[1]
QUEUED = "cutout-up"
LABELS = {
    "model": "model only (session.run)",
    "model-lanes": "model only, runs side by side",
    "cutout-p": "cutout p",
    QUEUED: "cutout up (queued)",
    "rembg-remove": "rembg remove() loop",
    "rembg-p": "rembg p",
}
CLASS_LABELS = {"small": "small", "hd": "HD", "12mp": "12 MP"}
ENGINE_LIMIT = {"small": 1.15, "hd": 1.15, "12mp": 2.0}
FAST_SPEEDUP = 1.8  # issue 18, u2net: the fast path against cutout p at fp32, whole process
FAST_IOU = 0.98  # and its masks against fp32's


@dataclass
class Plan:
    model: str
    rounds: int
    photos: int
    jpegs: int
    latency_files: int
    idle_seconds: float
    queued: bool
    rembg: bool
    precisions: list[str]  # besides fp32
    settle: float | None
    work: Path
    out: Path


@dataclass
class Runs:
    """Every engine's results, a list per engine (one entry per round)."""

    by_engine: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)

    def add(self, engine: str, result: dict[str, Any]) -> None:
        self.by_engine.setdefault(engine, []).append(result)


def label(engine: str) -> str:
    base, _, precision = engine.partition("@")
    return LABELS[base] + (f" ({precision})" if precision else "")


def child(engine: str, imageset: Path, out: Path, plan: Plan, env: dict[str, str]) -> Any:
    argv = [sys.executable, "-m", "bench.children", engine]
    argv += ["--set", str(imageset), "--out", str(out), "--model", plan.model]
    log = plan.work / f"{engine}.log"
    with log.open("ab") as err:
        done = subprocess.run(
            argv, check=False, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err
        )
    if done.returncode:
        raise SystemExit(f"bench: {engine} failed (exit {done.returncode}); see {log}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def run_queued(svc: queued.Service, imageset: images.ImageSet, tag: str) -> dict[str, Any]:
    """The whole set dropped at once (one settle delay, as a real drop of many files), timed
    from the first drop to the last output: throughput over the mix, not per class."""
    batch = {c: imageset.files[c] for c in imageset.classes}
    seconds = svc.run_batches(batch, tag)
    total = sum(p.stat().st_size for p in (svc.outbox / tag).rglob("*.png"))
    mix = {"images": imageset.count(), "seconds": seconds, "bytes": total}
    return {"classes": {"mix": mix}, "providers": "as cutout p", "engine": QUEUED}


def rotate(items: list[str], by: int) -> list[str]:
    by %= len(items)
    return items[by:] + items[:by]


def child_env(model_home: Path) -> dict[str, str]:
    # rembg reads U2NET_HOME: pointed at the same files, it never downloads.
    return {**os.environ, "U2NET_HOME": str(model_home), "CUTOUT_MODEL_HOME": str(model_home)}


@contextmanager
def maybe_service(plan: Plan, imageset: images.ImageSet) -> Iterator[queued.Service | None]:
    if not plan.queued:
        yield None
        return
    with queued.service(
        plan.work / "up", plan.model, plan.work / "up.log", settle=plan.settle
    ) as svc:
        # The workers have loaded the model and grown to each size (bench.children.warm_folder).
        svc.run_batches({c: imageset.files[c][:2] for c in imageset.classes}, "warm")
        svc.wait_idle()
        yield svc


def measure(plan: Plan, imageset: images.ImageSet, env: dict[str, str]) -> dict[str, Any]:
    runs = Runs()
    engines = [e for e in ENGINES if plan.rembg or not e.startswith("rembg")]
    engines += [f"{e}@{p}" for p in plan.precisions for e in ("model", "cutout-p")]
    if plan.queued:
        engines.append(QUEUED)
    extra: dict[str, Any] = {"refused": {}}
    with maybe_service(plan, imageset) as svc:
        for r in range(plan.rounds):
            for engine in rotate(engines, r):
                started = time.monotonic()
                if engine == QUEUED:
                    assert svc is not None
                    result = run_queued(svc, imageset, f"r{r}")
                    svc.wait_idle()  # archiving and status writes end before the next engine
                elif engine.partition("@")[2] in extra["refused"]:
                    continue
                else:
                    try:
                        result = child(
                            engine, imageset.root, plan.work / f"r{r}" / engine, plan, env
                        )
                    except SystemExit as exc:
                        if "@" not in engine:
                            raise
                        # A pair beyond its tolerance is refused by the engine: say so, go on.
                        extra["refused"][engine.partition("@")[2]] = str(exc)
                        continue
                runs.add(engine, result)
                runs.loads.append(os.getloadavg()[0])
                print(
                    f"bench: round {r + 1}/{plan.rounds} {engine:13s} "
                    f"{time.monotonic() - started:6.1f} s  load {runs.loads[-1]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
        if svc is not None:
            extra |= service_checks(svc, imageset, plan)
    return {"runs": runs.by_engine, "loads": runs.loads, **extra}


def service_checks(svc: queued.Service, imageset: images.ImageSet, plan: Plan) -> dict[str, Any]:
    small = imageset.files[imageset.classes[0]]
    files = (small * (1 + plan.latency_files // max(1, len(small))))[: plan.latency_files]
    added = svc.latencies(files, "latency")
    time.sleep(3)  # let the last job's status and archive settle
    idle = svc.idle_cpu_percent(plan.idle_seconds)
    return {
        "latency_added_s": added,
        "worker_peak_rss_mb": svc.worker_peak_rss_mb(),
        "idle_cpu_percent": idle,
        "failed_inputs": [str(p) for p in svc.failed()],
    }


def alpha(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.getchannel("A") if "A" in im.getbands() else im.convert("L"))


def fidelity(ours: Path, theirs: Path) -> dict[str, Any]:
    """Our cut-outs' alpha against rembg's: IoU of the >127 masks and mean |difference|."""
    rows: list[dict[str, Any]] = []
    for mine in sorted(ours.rglob("*.png")):
        other = theirs / mine.relative_to(ours)
        a, b = alpha(mine).astype(int), alpha(other).astype(int)
        union = np.logical_or(a > 127, b > 127).sum()
        iou = float(np.logical_and(a > 127, b > 127).sum() / union) if union else 1.0
        rows.append(
            {"image": str(mine.relative_to(ours)), "iou": iou, "mad": float(np.abs(a - b).mean())}
        )
    return {
        "images": len(rows),
        "equal": sum(r["iou"] >= 0.99 and r["mad"] <= 2 for r in rows),
        "mean_iou": statistics.fmean(r["iou"] for r in rows) if rows else 1.0,
        "worst_iou": min((r["iou"] for r in rows), default=1.0),
        "mean_mad": statistics.fmean(r["mad"] for r in rows) if rows else 0.0,
        "worst_mad": max((r["mad"] for r in rows), default=0.0),
        "rows": rows,
    }


def summarise(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per engine: ms per image per class (medians over rounds); images/s over a mix of
    equal parts small, HD and 12 MP (so that the result does not hang on how many images of
    each the set happens to hold), and over the set as built; output bytes, peak RSS (the
    largest), providers."""
    table: dict[str, dict[str, Any]] = {}
    for engine, results in raw["runs"].items():
        classes = results[0]["classes"].keys()
        ms = {
            c: statistics.median(
                1000 * r["classes"][c]["seconds"] / r["classes"][c]["images"] for r in results
            )
            for c in classes
        }
        as_built = statistics.median(
            sum(v["images"] for v in r["classes"].values())
            / sum(v["seconds"] for v in r["classes"].values())
            for r in results
        )
        sized = [c for c in ms if c in images.SIZE_CLASSES]
        thirds = len(sized) / sum(ms[c] / 1000 for c in sized) if sized else None
        table[engine] = {
            "rounds_ms": [
                {c: 1000 * v["seconds"] / v["images"] for c, v in r["classes"].items()}
                for r in results
            ],
            "rounds_images_per_s_set": [
                sum(v["images"] for v in r["classes"].values())
                / sum(v["seconds"] for v in r["classes"].values())
                for r in results
            ],
            "ms_per_image": ms,
            "images_per_s": thirds,  # equal parts of each size class
            "images_per_s_set": as_built,  # the set as built (mostly small images)
            "bytes": {c: results[0]["classes"][c]["bytes"] for c in classes},
            "peak_rss_mb": max((r.get("peak_rss_mb", 0.0) for r in results), default=0.0),
            "providers": results[0].get("providers", ""),
            "config": results[0].get("config", ""),
        }
    if QUEUED in table and "worker_peak_rss_mb" in raw:
        table[QUEUED]["peak_rss_mb"] = raw["worker_peak_rss_mb"]
    return table


def best_model(table: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The model's own limit in each round: the faster of its two settings per class (one
    run on all cores, or as many runs at once as p has images in flight)."""
    runs = [table[e] for e in ("model", "model-lanes") if e in table]
    if not runs:
        return None
    rounds = [
        {c: min(r[c] for r in same_round) for c in same_round[0]}
        for same_round in zip(*(t["rounds_ms"] for t in runs), strict=False)
    ]
    return {"rounds_ms": rounds}


def thirds_seconds(round_ms: dict[str, float]) -> float:
    """Seconds for one image of each size class (the equal-thirds mix)."""
    return sum(round_ms[c] for c in images.SIZE_CLASSES if c in round_ms) / 1000


def per_round(
    top: dict[str, Any], bottom: dict[str, Any], value: Callable[[dict[str, float]], float]
) -> float:
    """The median over rounds of top's value / bottom's value in the same round: engines that
    ran minutes apart are not compared, so a busy spell skews one round, not the ratio."""
    pairs = zip(top["rounds_ms"], bottom["rounds_ms"], strict=False)
    return statistics.median(value(a) / value(b) for a, b in pairs)


def precision_targets(
    table: dict[str, dict[str, Any]], raw: dict[str, Any], check: Callable[..., None]
) -> None:
    """Issue 18's targets, per precision besides fp32: its speed against cutout p at fp32,
    the fp32 model's own limit and rembg, and its masks against fp32's."""
    ours, model_only = table.get("cutout-p"), best_model(table)
    rembgs = [table[e] for e in ("rembg-remove", "rembg-p") if e in table]
    for precision, change in raw.get("precision_change", {}).items():
        fast = table.get(f"cutout-p@{precision}")
        if ours is None or fast is None:
            continue
        check(
            f"cutout p {precision} images/s / cutout p fp32, equal thirds (x)",
            per_round(ours, fast, thirds_seconds),
            FAST_SPEEDUP,
            below=False,
        )
        if model_only:
            check(
                f"cutout p {precision} images/s / model only fp32, its best (x)",
                per_round(model_only, fast, thirds_seconds),
                1.0,
                below=False,
            )
        if rembgs:
            best = max(rembgs, key=lambda t: t["images_per_s"] or 0.0)
            check(
                f"cutout p {precision} images/s / rembg's best, equal thirds (x)",
                per_round(best, fast, thirds_seconds),
                2.0,
                below=False,
            )
        check(
            f"cutout p {precision} masks vs fp32's, IoU mean (worst {change['worst_iou']:.3f}, "
            f"|diff| {change['mean_mad']:.2f}/255 mean, {change['images']} images)",
            change["mean_iou"],
            FAST_IOU,
            below=False,
        )


def targets(
    table: dict[str, dict[str, Any]], raw: dict[str, Any], model: str
) -> list[dict[str, Any]]:
    """Issue 6's targets: what was measured, the bound, and whether it holds. Ratios are
    medians of the ratios within each round."""
    found: list[dict[str, Any]] = []

    def check(name: str, value: float | None, bound: float, below: bool = True) -> None:
        holds = None if value is None else (value <= bound if below else value >= bound)
        found.append({"target": name, "value": value, "bound": bound, "holds": holds})

    ours, model_only = table.get("cutout-p"), best_model(table)
    if ours and model_only:
        for c, limit in ENGINE_LIMIT.items():
            if c in ours["ms_per_image"]:
                ratio = per_round(ours, model_only, operator.itemgetter(c))
                check(f"cutout p {CLASS_LABELS[c]} / model only, its best (x)", ratio, limit)
    rembgs = [table[e] for e in ("rembg-remove", "rembg-p") if e in table]
    if ours and rembgs:
        best = max(rembgs, key=lambda t: t["images_per_s"] or 0.0)
        check(
            "cutout p images/s / rembg's best, equal thirds (x)",
            per_round(best, ours, thirds_seconds),
            2.0,
            below=False,
        )
        theirs = table.get("rembg-remove", rembgs[0])
        check(
            "cutout p output bytes / rembg's (x, over the mix)",
            sum(ours["bytes"].values()) / max(1, sum(theirs["bytes"].values())),
            1.1,
        )
    if "fidelity" in raw:
        fid = raw["fidelity"]
        check(
            "masks equal to rembg's (IoU>=0.99, |diff|<=2/255), images failing",
            fid["images"] - fid["equal"],
            0,
        )
    precision_targets(table, raw, check)
    if ours and QUEUED in table:
        rates = zip(
            table[QUEUED]["rounds_images_per_s_set"], ours["rounds_images_per_s_set"], strict=False
        )
        check(
            "cutout up images/s / cutout p, same set (x)",
            statistics.median(queued_rate / p_rate for queued_rate, p_rate in rates),
            0.9,
            below=False,
        )
    if raw.get("latency_added_s"):
        check("cutout up added latency p50 (s)", statistics.median(raw["latency_added_s"]), 0.3)
    meaningful = model == "u2net" and "12mp" in (ours or {}).get("ms_per_image", {})
    if ours and ours.get("peak_rss_mb"):
        check(  # issue 18: two images in flight, 12 MP among them, u2net at fp32
            "cutout p peak RSS (MB)"
            + ("" if meaningful else f" [{model}, no 12 MP: not the target's case]"),
            ours["peak_rss_mb"],
            900,
        )
    if "worker_peak_rss_mb" in raw:
        check(
            "worker peak RSS (MB)"
            + ("" if meaningful else f" [{model}, no 12 MP: not the target's case]"),
            raw["worker_peak_rss_mb"],
            900,
        )
    if "idle_cpu_percent" in raw:
        check("idle cutout up CPU (% of a core)", raw["idle_cpu_percent"], 2.0)
    return found


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(
    table: dict[str, dict[str, Any]], found: list[dict[str, Any]], meta: dict[str, Any]
) -> str:
    classes = [
        c for c in images.SIZE_CLASSES if any(c in t["ms_per_image"] for t in table.values())
    ]
    head = [
        "",
        *(f"{CLASS_LABELS[c]} ms/img" for c in classes),
        "img/s, equal thirds",
        "img/s, set as built",
        "output MB",
        "peak RSS MB",
        "providers",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fast = sorted(e for e in table if "@" in e)
    for engine in [*ENGINES[:3], *fast, QUEUED, *ENGINES[3:]]:
        row = table.get(engine)
        if row is None:
            continue
        total = sum(row["bytes"].values())
        cells = [
            label(engine),
            *(fmt(row["ms_per_image"].get(c)) for c in classes),
            fmt(row["images_per_s"], 2),
            fmt(row["images_per_s_set"], 2),
            fmt(total / 1e6, 1) if total else "-",
            fmt(row["peak_rss_mb"]) if row["peak_rss_mb"] else "-",
            row["providers"].replace("ExecutionProvider", ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    ours, theirs = table.get("cutout-p"), table.get("rembg-remove")
    if ours and theirs:
        per_class = ", ".join(
            f"{CLASS_LABELS[c]} x{theirs['ms_per_image'][c] / ours['ms_per_image'][c]:.2f}"
            for c in classes
        )
        lines += ["", f"cutout p against rembg's remove() loop, per image: {per_class}."]
    lines += ["", "| target | measured | bound | holds |", "|---|---|---|---|"]
    for t in found:
        holds = "n/a" if t["holds"] is None else "yes" if t["holds"] else "NO"
        lines.append(f"| {t['target']} | {fmt(t['value'], 2)} | {fmt(t['bound'], 2)} | {holds} |")
    lines += ["", ", ".join(f"{k}: {v}" for k, v in meta.items())]
    return "\n".join(lines)


def cpu_name() -> str:
    """The processor's name: the ratios depend on it (the model's share of the time differs
    from one CPU to another: README "Performance")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown"


def parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one round on 8 images (~1.5 min); rougher: with 2 images per class, filling "
        "and draining cutout p's pipeline counts for more",
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--model", default="u2net", help="model for every engine (default u2net)")
    parser.add_argument("--no-queued", action="store_true", help="skip the queued path")
    parser.add_argument("--no-rembg", action="store_true", help="skip rembg (no ratios against it)")
    parser.add_argument(
        "--precisions",
        help="besides fp32, comma-separated (default: bf16,int8 where OpenVINO is installed; "
        "'' for none)",
    )
    parser.add_argument(
        "--settle", type=float, help="CUTOUT_SETTLE_SECONDS for the queued path (default: as set)"
    )
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temp folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Plan(
        model=args.model,
        rounds=args.rounds or (1 if quick else 3),
        photos=2 if quick else len(images.SAMPLE_PHOTOS),
        jpegs=2 if quick else 4,
        latency_files=3 if quick else 8,
        idle_seconds=5.0 if quick else 20.0,
        queued=not args.no_queued,
        rembg=not args.no_rembg,
        precisions=_precisions(args.precisions),
        settle=args.settle,
        work=args.work or Path(tempfile.mkdtemp(prefix="cutout-bench-")),
        out=args.out,
    )


def _precisions(given: str | None) -> list[str]:
    if given is not None:
        return [p.strip() for p in given.split(",") if p.strip() and p.strip() != "fp32"]
    try:
        import openvino  # noqa: F401
    except ImportError:
        return []
    return ["bf16", "int8"]


def main(argv: list[str] | None = None) -> None:
    plan = parse(argv)
    # Stopped with SIGTERM, still stop the service we started (the `finally` blocks run).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    import onnxruntime

    from cutout import store
    from cutout.models import get_model
    from settings import load_settings

    settings = load_settings()
    store.ensure(get_model(plan.model), settings.model_home, auto_pull=settings.model_auto_pull)
    started = time.monotonic()
    imageset = images.build(plan.work / "set", photos=plan.photos, jpegs=plan.jpegs)
    counts = ", ".join(f"{len(v)} {k}" for k, v in imageset.files.items())
    print(
        f"bench: {imageset.count()} images ({counts}) in {plan.work}; small JPEGs from "
        f"{imageset.jpegs_from}; model {plan.model}; {plan.rounds} round(s)",
        file=sys.stderr,
    )
    raw = measure(plan, imageset, child_env(settings.model_home))
    if plan.rembg:
        raw["fidelity"] = fidelity(plan.work / "r0" / "cutout-p", plan.work / "r0" / "rembg-remove")
    raw["precision_change"] = {
        p: fidelity(plan.work / "r0" / f"cutout-p@{p}", plan.work / "r0" / "cutout-p")
        for p in plan.precisions
        if p not in raw["refused"] and (plan.work / "r0" / f"cutout-p@{p}").is_dir()
    }
    table = summarise(raw)
    found = targets(table, raw, plan.model)
    meta = {
        "model": plan.model,
        "rounds": plan.rounds,
        "images": imageset.count(),
        # pascal_s where ../shared has it, else the shipped test photos: not the same mix.
        "small JPEGs from": str(imageset.jpegs_from),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu_name(),
        "onnxruntime": onnxruntime.__version__,
        "cutout p": table.get("cutout-p", {}).get("config", ""),
        "settle (s)": plan.settle if plan.settle is not None else "default",
        "load average during the run": f"{min(raw['loads']):.2f}-{max(raw['loads']):.2f}",
        "took": f"{time.monotonic() - started:.0f} s",
    }
    text = markdown(table, found, meta)
    text += "".join(f"\n\n{p} refused for {plan.model}: {why}" for p, why in raw["refused"].items())
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "speed.md").write_text(text + "\n")
    (plan.out / "speed.json").write_text(
        json.dumps({"meta": meta, "table": table, "targets": found, "raw": raw}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
