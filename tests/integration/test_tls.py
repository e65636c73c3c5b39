"""Redis over TLS (rediss://) for real: a `cutout worker` process, `cutout submit` and
`cutout status`, through a TLS server whose certificate comes from a CA made here.

The TLS server is tests/tls.py's proxy in front of the test Redis: the redis-server the
tests start is built without TLS (its docstring says more). Every byte between cutout and
Redis in these tests crosses that TLS port; there is no plain port the clients know of.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from kombu.exceptions import OperationalError
from PIL import Image

from cutout_cli.main import cli
from settings import load_settings
from tests.conftest import CAT
from tests.service import make_worker
from tests.tls import KeyPair, TlsProxy, make_ca, make_client_cert, make_server_cert
from worker.app import create_app


@dataclass(frozen=True)
class Tls:
    proxy: TlsProxy
    url: str  # the test database, through TLS only; the URL says nothing about certificates
    ca: KeyPair  # signed the server's certificate
    stranger: KeyPair  # another CA, which did not


@pytest.fixture(scope="module")
def tls(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = make_ca(folder, "cutout-test-ca"), make_ca(folder, "stranger-ca")
    plain = urlsplit(redis_url)
    assert plain.port is not None
    proxy = TlsProxy(make_server_cert(folder, ca), plain.port)
    proxy.start()
    yield Tls(proxy, f"rediss://127.0.0.1:{proxy.port}{plain.path}", ca, stranger)
    proxy.stop()


def test_worker_submit_and_status_over_tls(
    tls: Tls, model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker gets the CA as a setting, the client in the URL: both ways are documented.
    worker = make_worker(
        tmp_path / "service", tls.url, model_path.parent, CUTOUT_REDIS_CA_FILE=str(tls.ca.cert)
    )
    worker.start(concurrency=1)
    try:
        in_url = f"{tls.url}?ssl_cert_reqs=required&ssl_ca_certs={tls.ca.cert}"
        for name, value in worker.env.items():
            if name.startswith("CUTOUT_") and name != "CUTOUT_REDIS_CA_FILE":
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("CUTOUT_BROKER_URL", in_url)
        monkeypatch.setenv("CUTOUT_RESULT_BACKEND", in_url)
        source = worker.folders["inbox"] / "tls" / "cat.jpg"
        source.parent.mkdir()
        shutil.copy(CAT, source)
        relayed = tls.proxy.relayed

        runner = CliRunner()
        submitted = runner.invoke(cli, ["submit", str(source), "--wait", "--json"])
        assert submitted.exit_code == 0, submitted.output
        record = json.loads(submitted.stdout)
        assert record["state"] == "succeeded", record
        output = worker.folders["outbox"] / "tls" / "cat.png"
        assert record["output"] == str(output)
        with Image.open(output) as image:
            assert image.mode == "RGBA"

        status = runner.invoke(cli, ["status", record["id"], "--json"])
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["state"] == "succeeded"
        assert tls.proxy.relayed > relayed  # the client's connections went through TLS
    finally:
        worker.stop()


@pytest.mark.parametrize("command", [["worker", "-c", "1"], ["watch"], ["up"]])
def test_given_the_wrong_ca_the_service_stops_at_once_with_the_reason(
    tls: Tls, model_path: Path, tmp_path: Path, command: list[str]
) -> None:
    worker = make_worker(
        tmp_path, tls.url, model_path.parent, CUTOUT_REDIS_CA_FILE=str(tls.stranger.cert)
    )
    relayed = tls.proxy.relayed
    done = subprocess.run(
        [sys.executable, "-m", "cutout_cli", *command],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    assert f"rediss://127.0.0.1:{tls.proxy.port}" in done.stderr
    assert "TLS handshake failed" in done.stderr and "certificate verify failed" in done.stderr
    assert "CUTOUT_REDIS_CA_FILE" in done.stderr
    assert "ssl_certfile" in done.stderr  # the other half of the advice: a client certificate
    assert tls.proxy.relayed == relayed  # not one connection got past the handshake to Redis


def test_celery_checks_the_certificate_when_the_url_says_nothing(tls: Tls) -> None:
    """kombu alone would connect to this rediss:// URL without checking the certificate
    (it only logs a warning); the settings make it check, so an untrusted server is refused."""
    app = create_app(load_settings(broker_url=tls.url))
    try:
        with (
            pytest.raises(OperationalError, match="certificate verify failed"),
            app.connection_for_write() as connection,
        ):
            connection.ensure_connection(max_retries=1)
    finally:
        app.close()


@pytest.fixture(scope="module")
def mutual(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTls]:
    """A TLS front that also wants a client certificate from the CA (mutual TLS)."""
    folder = tmp_path_factory.mktemp("mtls")
    ca = make_ca(folder, "cutout-mtls-ca")
    plain = urlsplit(redis_url)
    assert plain.port is not None
    proxy = TlsProxy(make_server_cert(folder, ca), plain.port, client_ca=ca)
    proxy.start()
    yield MutualTls(
        proxy, f"rediss://127.0.0.1:{proxy.port}{plain.path}", ca, make_client_cert(folder, ca)
    )
    proxy.stop()


@dataclass(frozen=True)
class MutualTls:
    proxy: TlsProxy
    url: str
    ca: KeyPair
    client: KeyPair  # signed by ca: the certificate the server wants to see


def test_a_client_certificate_in_the_urls_serves_worker_and_submit(
    mutual: MutualTls, model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{mutual.url}?ssl_certfile={mutual.client.cert}&ssl_keyfile={mutual.client.key}"
    worker = make_worker(
        tmp_path / "service", url, model_path.parent, CUTOUT_REDIS_CA_FILE=str(mutual.ca.cert)
    )
    worker.start(concurrency=1)
    try:
        for name, value in worker.env.items():
            if name.startswith("CUTOUT_"):
                monkeypatch.setenv(name, value)
        source = worker.folders["inbox"] / "mtls" / "cat.jpg"
        source.parent.mkdir()
        shutil.copy(CAT, source)
        submitted = CliRunner().invoke(cli, ["submit", str(source), "--wait", "--json"])
        assert submitted.exit_code == 0, submitted.output
        assert json.loads(submitted.stdout)["state"] == "succeeded"
        assert (worker.folders["outbox"] / "mtls" / "cat.png").is_file()
    finally:
        worker.stop()
