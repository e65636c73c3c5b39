"""Make tests/data/masks/ from tests/data/photos/: run once, review the masks, commit them.

    .venv/bin/python tests/data/make_masks.py

The masks are our own engine's (u2net when its file is in the model cache, else u2netp),
thresholded to 0/255. They are reference masks, not human annotation: the tests that use
them check that a pipeline still finds the subject, which a model-made mask shows as well
as a hand-drawn one would (tests/data/README.md says more).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent
REPO = DATA.parents[1]
if str(REPO) not in sys.path:  # run as a script: make the engine importable
    sys.path.insert(0, str(REPO))

from cutout import store  # noqa: E402
from cutout.models import get_model  # noqa: E402
from cutout.options import RemovalOptions  # noqa: E402
from cutout.pipeline import Remover  # noqa: E402
from cutout.session import Session, open_session  # noqa: E402

PREFERRED = ("u2net", "u2netp")  # the larger model draws the better reference
THRESHOLD = 127


def best_session(home: Path) -> Session:
    for name in PREFERRED:
        spec = get_model(name)
        if store.status(spec, home) == "present":
            return open_session(spec, store.model_file(spec, home))
    sys.exit(f"none of {', '.join(PREFERRED)} in {home}: run `cutout models pull u2net`")


def main() -> None:
    home = Path(
        os.environ.get("CUTOUT_MODEL_HOME") or os.environ.get("U2NET_HOME") or "~/.u2net"
    ).expanduser()
    session = best_session(home)
    remover = Remover(session, RemovalOptions(only_mask=True))
    (DATA / "masks").mkdir(exist_ok=True)
    for photo in sorted((DATA / "photos").glob("*.jpg")):
        soft = remover.cut_out(remover.decode(photo))
        binary = soft.point(lambda v: 255 if v > THRESHOLD else 0).convert("L")
        target = DATA / "masks" / f"{photo.stem}.png"
        binary.save(target, optimize=True)
        print(f"{target.relative_to(REPO)}: {session.spec.name}, {binary.getbbox()}")


if __name__ == "__main__":
    main()
