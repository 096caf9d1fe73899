"""A small HTTP(S) server on a loopback port that stands in for a cloud's REST API, for the
providers whose clouds have no emulator (GCP, Azure). The test module gives it routes that
answer in the API's recorded JSON shapes; the server keeps every request it received, so
a test asserts on what the real SDK sent, and can be told to answer the next matching
requests with an error instead."""
from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: object  # the decoded JSON body, None when there was none
    headers: dict[str, str]


@dataclass
class Reply:
    status: int
    body: object = None  # encoded as JSON when not None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request, re.Match], Reply]


@dataclass
class Failure:
    method: str
    path: re.Pattern
    reply: Reply
    count: int


class RecordedCloud(ThreadingHTTPServer):
    """Answers `routes` ((method, path regex) → handler); anything else is a 404 in
    `not_found`'s shape, since each cloud words that differently."""

    daemon_threads = True

    def __init__(self, routes: dict[tuple[str, str], Route], not_found: Callable[[Request], Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = [(method, re.compile(path), handler) for (method, path), handler in routes.items()]
        self.not_found = not_found
        self.received: list[Request] = []
        self.failures: list[Failure] = []
        self.lock = threading.Lock()
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_port}"

    def fail(self, method: str, path: str, reply: Reply, count: int = 1) -> None:
        """Answer the next `count` requests of `method` whose path matches `path` with `reply`."""
        self.failures.append(Failure(method, re.compile(path), reply, count))

    def requests(self, method: str, path: str) -> list[Request]:
        """The requests received so far of `method` whose path matches `path`."""
        pattern = re.compile(path)
        return [r for r in self.received if r.method == method and pattern.fullmatch(r.path)]

    def answer(self, request: Request) -> Reply:
        with self.lock:
            self.received.append(request)
            for failure in self.failures:
                if failure.count and failure.method == request.method and failure.path.fullmatch(request.path):
                    failure.count -= 1
                    return failure.reply
            for method, pattern, handler in self.routes:
                if method == request.method and (match := pattern.fullmatch(request.path)):
                    return handler(request, match)
        return self.not_found(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = Request(self.command, url.path, parse_qs(url.query), json.loads(raw) if raw else None,
                          dict(self.headers))
        reply = self.server.answer(request)
        body = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, *args) -> None:
        pass


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, for an SDK that sends tokens only over TLS;
    the certificate is also the CA bundle the SDK is told to trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cloud.crt", folder / "cloud.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def serving(server: ThreadingHTTPServer, tls: tuple[Path, Path] | None = None) -> Iterator[ThreadingHTTPServer]:
    """`server` (a RecordedCloud, or any other test server) answering on its thread, over
    TLS with (certificate, key) when given, until the block ends."""
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
