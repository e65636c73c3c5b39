"""Writes `.env.example` from the Settings class, so that it lists every variable:
`python -m settings.example > .env.example` (tests/test_deploy.py checks it is current)."""

from __future__ import annotations

from pathlib import Path

from settings.config import ENV_PREFIX, Settings

HEADER = """\
# cutout: copy to .env and edit. docker compose and `cutout` both read it.
# Passwords and tokens: required by docker-compose.yml.
REDIS_PASSWORD=change-me
FLOWER_USER=admin
FLOWER_PASSWORD=change-me-too
# Where inbox/, outbox/, failed/ and done/ live on the host (docker compose).
DATA_DIR=./data
# Flower's published address and port (loopback: not reachable from other hosts).
FLOWER_BIND=127.0.0.1
FLOWER_PORT=5555
# The HTTP gateway's bearer tokens (comma-separated, 16+ characters each; e.g. from
# python3 -c "import secrets; print(secrets.token_urlsafe(32))"), its published address and port.
HTTP_TOKENS=change-me-to-a-long-random-string
HTTP_BIND=127.0.0.1
HTTP_PORT=7000

# Every setting, with its default (see README, Settings). Uncomment to change.
"""


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        return "$U2NET_HOME or ~/.u2net"
    value = field.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return f"./{value.as_posix()}"
    return str(value)


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    for name, field in Settings.model_fields.items():
        lines.append(f"# {field.description}")
        lines.append(f"# {ENV_PREFIX}{name.upper()}={_default(name)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
