"""How the registry client reaches a registry: blob redirects (relative ones followed, a
downgrade from HTTPS to HTTP refused) and the proxies the environment names.

Everything runs on 127.0.0.1: the real registry (docker-registry), a front server that
relays to it and answers blob requests with redirects as registries backed by object
storage do, and a forwarding proxy (CONNECT tunnels and absolute-form requests) that logs
what it was asked for."""

from __future__ import annotations

import http.client
import os
import select
import shutil
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ocirt.manager.errors import ManagerError
from ocirt.manager.images import service as images
from ocirt.manager.images.registry import auth
from support import images as test_images
from support import registry
from support.tokens import make_cert

RELAYED = ("Content-Type", "Content-Length", "Docker-Content-Digest", "WWW-Authenticate", "Location")


class Served:
    """An HTTP server on a free 127.0.0.1 port (TLS when given ``cert``), serving from a
    thread of its own until ``close``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], cert: tuple[str, str] | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert[1], cert[0])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Front(Served):
    """A registry's front door on 127.0.0.1: relays to ``upstream``; a blob GET is answered
    with a 307 to ``redirect(path)`` and served from ``/_blob/...`` of whichever front the
    redirect names. ``hits`` lists the storage paths fetched here."""

    def __init__(self, upstream: str, redirect: Callable[[str], str], cert: tuple[str, str] | None = None):
        self.hits: list[str] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if "/blobs/sha256:" in self.path and not self.path.startswith("/_blob/"):
                    self.send_response(307)
                    self.send_header("Location", redirect(self.path))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.startswith("/_blob/"):
                    front.hits.append(self.path)
                self.relay("GET", self.path.removeprefix("/_blob"))

            def do_HEAD(self) -> None:
                self.relay("HEAD", self.path)

            def relay(self, method: str, path: str) -> None:
                conn = http.client.HTTPConnection(upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k in ("Accept", "Authorization", "Range")}
                conn.request(method, path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                for name in RELAYED:
                    if resp.headers.get(name) is not None:
                        self.send_header(name, resp.headers[name])
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)
                conn.close()

            def log_message(self, *args: object) -> None:
                return

        super().__init__(Handler, cert)


class Proxy:
    """A forwarding proxy: ``CONNECT host:port`` opens a tunnel; an absolute-form request is
    passed to its host as it came. ``asked`` lists each connection's first request line."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.done.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            self.asked.append(line)
            method, target, _ = line.split(" ")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
            else:
                hostport = target.split("/")[2]
                host, _, port = hostport.partition(":")
                upstream = socket.create_connection((host, int(port or 80)), timeout=10)
                rest = head
            with upstream:
                upstream.sendall(rest)
                _pipe(client, upstream)

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.listener.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    while True:
        ready, _, _ = select.select([a, b], [], [], 30)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


@pytest.fixture
def reg(tmp_path: object) -> Iterator[registry.Registry]:
    work = str(tmp_path)
    with registry.running(os.path.join(work, "registry")) as r:
        oci = os.path.join(work, "layout")
        test_images.httpd_image(oci, "img")
        test_images.push(oci, "img", r.ref("test/img:1"), r)
        yield r


@pytest.fixture
def root(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    path = os.path.join(str(tmp_path), "root")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cert(tmp_path: object) -> tuple[str, str]:
    return make_cert(str(tmp_path))


def pull(root: str, ref: str) -> None:
    images.pull(root, ref, tls_verify=False, quiet=True)


def test_relative_blob_redirect_is_followed(reg: registry.Registry, root: str) -> None:
    front = Front(reg.host, lambda path: f"/_blob{path}")
    try:
        pull(root, f"{front.host}/test/img:1")
        assert front.hits, "the blobs did not come through the redirect"
    finally:
        front.close()


def test_redirect_from_https_to_http_is_refused(
    reg: registry.Registry, root: str, cert: tuple[str, str]
) -> None:
    plain = Front(reg.host, lambda path: f"/_blob{path}")
    secure = Front(reg.host, lambda path: f"http://{plain.host}/_blob{path}", cert)
    try:
        with pytest.raises(ManagerError, match="from https to plain http"):
            pull(root, f"{secure.host}/test/img:1")
        assert plain.hits == [], "a blob was fetched over plain HTTP after an HTTPS registry"
    finally:
        secure.close()
        plain.close()


def test_https_proxy_tunnels_and_no_proxy_bypasses(
    reg: registry.Registry, root: str, cert: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secure = Front(reg.host, lambda path: f"/_blob{path}", cert)
    proxy = Proxy()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        pull(root, f"{secure.host}/test/img:1")
        assert any(line.startswith(f"CONNECT {secure.host} HTTP/") for line in proxy.asked), proxy.asked
        assert secure.hits, "the redirected blobs did not come through the tunnel"
        assert all(line.startswith("CONNECT ") for line in proxy.asked), proxy.asked  # TLS end to end

        proxy.asked.clear()
        shutil.rmtree(root)  # a fresh store: everything is fetched again
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
        pull(root, f"{secure.host}/test/img:1")
        assert proxy.asked == []
    finally:
        proxy.close()
        secure.close()


def test_http_proxy_gets_absolute_requests(
    reg: registry.Registry, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = Proxy()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        pull(root, reg.ref("test/img:1"))
        assert any(line == f"GET http://{reg.host}/v2/ HTTP/1.1" for line in proxy.asked), proxy.asked
    finally:
        proxy.close()


class Recorder(Served):
    """A plain HTTP server on 127.0.0.1 that answers 200 and keeps each request's
    ``Authorization`` header (None when there was none)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append(self.headers.get("Authorization"))
                body = b'{"token": "plain"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        super().__init__(Handler)
        self.url = f"http://{self.host}/token"


def test_token_realm_redirect_to_http_is_refused(cert: tuple[str, str]) -> None:
    """The token request carries the user's password (Basic): a realm on HTTPS that redirects
    to plain HTTP must not get it sent there."""
    plain = Recorder()
    realm = Front("127.0.0.1:1", lambda path: path, cert)  # relays nothing: only redirects
    realm.server.RequestHandlerClass.do_GET = _redirect_to(plain.url)  # type: ignore[attr-defined]
    try:
        challenge = auth.Challenge("bearer", {"realm": f"https://{realm.host}/token", "service": "test"})
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with pytest.raises(ManagerError, match="redirected from https"):
            auth.bearer_token(challenge, "repository:x:pull", ("user", "secret"), context)
        assert plain.seen == [], "the credentials went to a plain HTTP server"
    finally:
        realm.close()
        plain.close()


def _redirect_to(url: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def do_get(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", url)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return do_get
