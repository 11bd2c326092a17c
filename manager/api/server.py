"""``ocirtctl system service``: the Docker Engine API on unix and tcp sockets.

A front end, like ``podman system service``: every request runs the code the CLI runs, on
the same root, so either sees what the other made; containers live in their shims and
outlive the service. One thread per connection (keep-alive, HTTP/1.1), each request with
database connections of its own (``db.thread_connections``); per-container work is
serialised by the same container locks the CLI's processes take.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ocirt.manager import db
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError

API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
DEFAULT_URI = "unix:///run/ocirt/docker.sock"
BACKLOG = 256  # many clients connect at once (compose, a load test); the kernel caps it at somaxconn
SD_LISTEN_FDS_START = 3
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
RAW_STREAM = "application/vnd.docker.raw-stream"
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


class ApiError(Exception):
    """A failure with the status dockerd answers it with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def status_of(exc: ManagerError) -> int:
    """dockerd's status for a manager failure: the manager names it in words, not types."""
    text = str(exc).lower()
    if "no such" in text or "not found" in text:
        return 404
    if any(w in text for w in ("already", "in use", "stop it first", "is running", "is not running")):
        return 409
    if any(w in text for w in ("is paused", "is exited", "is created", "active endpoints", "allocated")):
        return 409
    return 400


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    handler: Handler
    version: str = API_VERSION
    streaming: bool = field(default=False)
    hijacked: bool = field(default=False)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return self.arg(name).lower() in ("1", "true", "yes")

    def json(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, f"invalid JSON body: {exc}") from None

    def stream(self, content_type: str, status: int = 200) -> Callable[[bytes], None]:
        """Send the headers now and return a writer of body chunks (chunked encoding); the
        client sees each chunk as it is written (logs -f, pull progress, wait)."""
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Transfer-Encoding", "chunked")
        h.common_headers()
        h.end_headers()
        h.wfile.flush()
        self.streaming = True

        def write(data: bytes) -> None:
            if data:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                h.wfile.flush()

        return write

    def hijack(self, raw: bool) -> socket.socket:
        """Hand the connection to the caller (docker's attach and exec start): 101 when the
        client asked to upgrade, else 200; the stream runs until the connection closes."""
        h = self.handler
        upgrade = h.headers.get("Upgrade", "").lower() == "tcp"
        h.send_response(101 if upgrade else 200, "UPGRADED" if upgrade else None)
        h.send_header("Content-Type", RAW_STREAM if raw else MULTIPLEXED_STREAM)
        if upgrade:
            h.send_header("Connection", "Upgrade")
            h.send_header("Upgrade", "tcp")
        h.common_headers()
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        self.hijacked = True
        sock: socket.socket = h.connection
        return sock

    def end_stream(self) -> None:
        try:
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()
        except OSError:
            self.handler.close_connection = True

    def gone(self) -> bool:
        """Whether the client hung up: a long wait or ``logs -f`` must not outlive it (the
        docker CLI's ``run -d`` leaves a wait behind when it exits)."""
        sock: socket.socket = self.handler.connection
        if not select.select([sock], [], [], 0)[0]:
            return False
        try:
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Context, Request], Reply | None]


class Idle:
    """When the service last finished a request, and how many are under way: ``--time``
    ends it only when nothing is in flight (a ``logs -f`` counts as busy)."""

    def __init__(self) -> None:
        self.active = 0
        self.since = time.monotonic()
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            self.since = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            return 0.0 if self.active else time.monotonic() - self.since


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "ocirt"

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a busy client would fill the journal with one line per ping."""

    def common_headers(self) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def dispatch(self) -> None:
        service: Service = self.server.service  # type: ignore[attr-defined]
        service.idle.enter()
        try:
            with db.thread_connections():
                self.answer(service)
        finally:
            service.idle.leave()

    def answer(self, service: Service) -> None:
        parts = urlsplit(self.path)
        path, version = unquote(parts.path), API_VERSION
        req = Request(self.command, path, {}, parse_qs(parts.query), self.body(), self)
        try:
            m = _VERSIONED.match(path)
            if m:
                version, path = check_version(int(m.group(1)), int(m.group(2))), m.group(3)
            req.path, req.version = path, version
            func, req.params = service.route(self.command, path)
            reply = func(service.ctx, req)
        except ApiError as exc:
            reply = Reply(exc.status, {"message": str(exc)})
        except ManagerError as exc:
            reply = Reply(status_of(exc), {"message": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        except Exception as exc:
            reply = Reply(500, {"message": f"{type(exc).__name__}: {exc}"})
        if req.hijacked:
            return
        if req.streaming:  # the status is sent: a late failure can only end the stream
            req.end_stream()
            return
        self.send(reply or Reply(204))

    def send(self, reply: Reply) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode() + b"\n"
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", reply.content_type)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.common_headers()
        if reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(data)


def check_version(major: int, minor: int) -> str:
    asked = (major, minor)
    if asked > (1, 43):
        raise ApiError(
            400, f"client version {major}.{minor} is too new. Maximum supported API version is {API_VERSION}"
        )
    if asked < (1, 24):
        raise ApiError(
            400,
            f"client version {major}.{minor} is too old. Minimum supported API version is {MIN_API_VERSION}",
        )
    return f"{major}.{minor}"


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = BACKLOG


class TCPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG


class Service:
    """The listeners, the routing table and the idle clock of one ``system service``."""

    def __init__(self, ctx: Context, routes: list[tuple[str, str, Route]]) -> None:
        self.ctx = ctx
        self.idle = Idle()
        self.routes = [
            (method, re.compile("^" + _pattern(path) + "$"), func) for method, path, func in routes
        ]
        self.servers: list[socketserver.BaseServer] = []

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        lookup = "GET" if method == "HEAD" else method
        for want, regex, func in self.routes:
            m = regex.match(path)
            if m:
                if want == lookup:
                    return func, m.groupdict()
                allowed = True
        if allowed:
            raise ApiError(405, f"method {method} not allowed on {path}")
        raise ApiError(404, f"page not found: {method} {path}")

    def listen(self, uri: str) -> None:
        scheme, _, rest = uri.partition("://")
        server: socketserver.BaseServer
        if scheme == "unix" and rest:
            server = UnixServer(bind_unix(rest), Handler)
            os.chmod(rest, 0o660)
        elif scheme == "tcp" and rest:
            host, sep, port = rest.rstrip("/").rpartition(":")
            if not sep or not port.isdigit():
                raise ManagerError(f"system service: {uri}: expected tcp://HOST:PORT")
            server = TCPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
        else:
            raise ManagerError(f"system service: {uri}: expected unix:///PATH or tcp://HOST:PORT")
        self.add(server)

    def adopt(self, fd: int) -> None:
        """A socket systemd opened and passed (``LISTEN_FDS``): already bound and listening."""
        sock = socket.socket(fileno=fd)
        server: socketserver.BaseServer
        if sock.family == socket.AF_UNIX:
            server = UnixServer(sock.getsockname(), Handler, bind_and_activate=False)
        else:
            server = TCPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        self.add(server)

    def add(self, server: socketserver.BaseServer) -> None:
        server.service = self  # type: ignore[attr-defined]
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()

    def wait(self, idle_limit: float) -> None:
        """Serve until ``idle_limit`` seconds pass with nothing in flight (0: forever)."""
        try:
            while idle_limit <= 0 or self.idle.idle_for() < idle_limit:
                time.sleep(0.2 if idle_limit <= 0 else min(0.2, idle_limit))
        finally:
            self.close()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
            if isinstance(server, UnixServer) and isinstance(server.server_address, str):
                try:
                    os.unlink(server.server_address)
                except OSError:
                    pass


def _pattern(path: str) -> str:
    """``/containers/{id}/json`` → a regex with a named group per ``{name}``; ``{name:path}``
    takes slashes too (image names have them)."""
    out = re.escape(path)
    out = re.sub(r"\\\{(\w+):path\\\}", r"(?P<\1>.+)", out)
    return re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", out)


def bind_unix(path: str) -> str:
    """Make the socket's folder; refuse a socket another service still answers on, remove a
    stale one (a killed service leaves its file)."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise ManagerError(f"system service: {path}: another service is listening on it")
        finally:
            probe.close()
    return path


def inherited_fds() -> list[int]:
    """systemd socket activation: ``LISTEN_FDS`` sockets from fd 3, meant for this pid."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def serve(ctx: Context, routes: list[tuple[str, str, Route]], uris: list[str], idle_limit: float) -> int:
    service = Service(ctx, routes)
    fds = inherited_fds()
    try:
        for fd in fds:
            service.adopt(fd)
        for uri in uris or ([] if fds else [DEFAULT_URI]):
            service.listen(uri)
    except OSError as exc:
        service.close()
        raise ManagerError(f"system service: {exc.strerror or exc}") from None
    where = [f"fd {fd}" for fd in fds] + (uris or ([] if fds else [DEFAULT_URI]))
    print(f"ocirtctl: serving the Docker Engine API v{API_VERSION} on {', '.join(where)}", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # systemd's stop: close and unlink
    try:
        service.wait(idle_limit)
    except KeyboardInterrupt:
        pass
    return 0
