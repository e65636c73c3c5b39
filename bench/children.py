"""The measured runs, one fresh process each (`python -m bench.children ENGINE ...`), so that
every engine starts from the same state and its peak RSS is its own.

Each loads its model, warms up on an image of each size (untimed: model load, memory
growth; `warm_folder`), then times every size class and prints one JSON object on stdout.

- model: the ONNX session alone on prepared tensors (the model's own limit), through
  cutout's session factory (same providers), one run at a time on all cores.
- model-lanes: the same, with as many runs at once as `cutout p` has images in flight, the
  cores shared out between them: the other way to spend the cores on the model (p ran it so
  until its runs took turns, which costs less memory); the model's limit is the faster.
- cutout-p: `cutout p` itself, in-process, once per size-class folder.
- rembg-remove: rembg's `remove()` on each file's bytes, session reused, output written.
- rembg-p: `rembg p`, in-process, once per folder; its `new_session` is handed the warm
  session so that, like ours, the model load is not timed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ENGINES = ("model", "model-lanes", "cutout-p", "rembg-remove", "rembg-p")
CLASSES = ("small", "hd", "12mp")


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def output_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class ProviderLog(logging.Handler):
    """Catches cutout's "model ... loaded ...; providers ..." line: the providers in use."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.providers = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("model %s loaded") and isinstance(record.args, tuple):
            self.providers = str(record.args[2])


def timed_classes(
    sets: Path, out: Path, run: Callable[[Path, Path], None]
) -> dict[str, dict[str, float]]:
    classes: dict[str, dict[str, float]] = {}
    for size_class in CLASSES:
        folder = sets / size_class
        if not folder.is_dir() or not images_in(folder):
            continue
        target = out / size_class
        if target.exists():  # rembg p skips what exists: every run starts empty
            shutil.rmtree(target)
        started = time.perf_counter()
        run(folder, target)
        seconds = time.perf_counter() - started
        classes[size_class] = {
            "images": len(images_in(folder)),
            "seconds": seconds,
            "bytes": output_bytes(target) if target.exists() else 0,
        }
    return classes


def warm_folder(sets: Path, copies: int = 2) -> Path:
    """A folder holding `copies` of the first image of each size class, for the untimed
    warm-up. Each size is needed: the first image of a new size grows the process's memory
    (page faults: ~6,000 per HD image and ~28,000 per 12 MP one with `cutout p`, ~5% and
    ~10% of their time), a one-off cost like the model load that a real batch pays once,
    not once every 8 images. Two copies, so that both of `cutout p`'s lanes see each size."""
    folder = Path(tempfile.mkdtemp(prefix="cutout-bench-warm-"))
    for index, size_class in enumerate(CLASSES):
        found = images_in(sets / size_class) if (sets / size_class).is_dir() else []
        if not found:
            continue
        for copy in range(copies):
            shutil.copy(found[0], folder / f"{index}-{size_class}-{copy}{found[0].suffix}")
    return folder


def run_model(
    sets: Path, out: Path, model: str, precision: str = "fp32", lanes: int = 1
) -> dict[str, Any]:
    """The session alone; with lanes > 1, that many runs at once on cores / lanes threads
    each (as `cutout p` runs its images)."""
    from cutout import mask, new_session
    from cutout.images import decode
    from cutout.session import default_threads

    session = new_session(model, threads=default_threads(lanes), precision=precision)
    name = session.inference.get_inputs()[0].name
    tensors = {
        c: [
            mask.prepare(decode(p, max_pixels=10**9).model_input, session.spec)
            for p in images_in(sets / c)
        ]
        for c in CLASSES
        if (sets / c).is_dir()
    }

    def run(batch: list[Any]) -> None:
        if lanes == 1:
            for tensor in batch:
                session.inference.run(None, {name: tensor})
            return
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(lambda t: session.inference.run(None, {name: t}), batch))

    warm = next(t for ts in tensors.values() for t in ts)
    run([warm] * 3 * lanes)  # the arena grows over the first runs
    classes: dict[str, dict[str, float]] = {}
    for size_class, batch in tensors.items():
        if not batch:
            continue
        started = time.perf_counter()
        run(batch)
        classes[size_class] = {
            "images": len(batch),
            "seconds": time.perf_counter() - started,
            "bytes": 0,
        }
    return {
        "classes": classes,
        "providers": ", ".join(session.providers),
        "config": f"{lanes} in flight x {default_threads(lanes)} threads",
    }


def p_lanes() -> int:
    """Images `cutout p` has in flight (1 in versions before it had lanes: for "before" runs)."""
    from cutout.session import usable_cores
    from cutout_cli import p as p_module

    lanes_for: Callable[[int], int] | None = getattr(p_module, "lanes_for", None)
    return lanes_for(usable_cores()) if lanes_for is not None else 1


def run_model_lanes(sets: Path, out: Path, model: str, precision: str = "fp32") -> dict[str, Any]:
    return run_model(sets, out, model, precision, lanes=p_lanes())


def run_cutout_p(sets: Path, out: Path, model: str, precision: str = "fp32") -> dict[str, Any]:
    from cutout.session import default_threads
    from cutout_cli.main import cli

    catcher = ProviderLog()
    logging.getLogger("cutout.session").addHandler(catcher)
    logging.getLogger("cutout.session").setLevel(logging.INFO)

    def p(folder: Path, target: Path) -> None:
        argv = ["p", "-m", model, "--precision", precision, str(folder), str(target)]
        code = cli.main(argv, standalone_mode=False)
        if code:
            raise SystemExit(f"cutout p failed on {folder} (exit {code})")

    warm = warm_folder(sets)
    p(warm, warm / "out")
    classes = timed_classes(sets, out, p)
    return {
        "classes": classes,
        "providers": catcher.providers,
        "config": f"{p_lanes()} images in flight, model runs taking turns on "
        f"{default_threads()} threads",
    }


def _rembg_session(model: str) -> Any:
    from rembg import new_session

    return new_session(model)


def _rembg_providers(session: Any) -> str:
    inner = getattr(session, "inner_session", None)
    return ", ".join(inner.get_providers()) if inner is not None else "?"


def run_rembg_remove(sets: Path, out: Path, model: str, precision: str = "fp32") -> dict[str, Any]:
    from rembg import remove

    session = _rembg_session(model)

    def loop(folder: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for path in images_in(folder):
            result = remove(path.read_bytes(), session=session)
            (target / f"{path.stem}.png").write_bytes(result)

    warm = warm_folder(sets)
    loop(warm, warm / "out")
    return {"classes": timed_classes(sets, out, loop), "providers": _rembg_providers(session)}


def run_rembg_p(sets: Path, out: Path, model: str, precision: str = "fp32") -> dict[str, Any]:
    # The module, not the click command that rembg.commands re-exports under its name.
    rembg_p = importlib.import_module("rembg.commands.p_command")
    session = _rembg_session(model)
    rembg_p.new_session = lambda *args, **kwargs: session  # type: ignore[attr-defined]

    def p(folder: Path, target: Path) -> None:
        rembg_p.p_command.main(["-m", model, str(folder), str(target)], standalone_mode=False)

    warm = warm_folder(sets)
    p(warm, warm / "out")
    return {"classes": timed_classes(sets, out, p), "providers": _rembg_providers(session)}


RUNNERS: dict[str, Callable[[Path, Path, str, str], dict[str, Any]]] = {
    "model": run_model,
    "model-lanes": run_model_lanes,
    "cutout-p": run_cutout_p,
    "rembg-remove": run_rembg_remove,
    "rembg-p": run_rembg_p,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("engine", help=f"{', '.join(ENGINES)}; ENGINE@PRECISION for bf16, int8")
    parser.add_argument("--set", type=Path, required=True, help="the image set (by class)")
    parser.add_argument("--out", type=Path, required=True, help="where outputs go")
    parser.add_argument("--model", default="u2net")
    args = parser.parse_args(argv)
    engine, _, precision = args.engine.partition("@")
    result = RUNNERS[engine](args.set, args.out, args.model, precision or "fp32")
    result["engine"] = args.engine
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
