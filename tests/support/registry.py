"""A real registry for tests: Debian's ``docker-registry`` (the CNCF distribution server).

Each instance listens on a free port of 127.0.0.1, keeps its blobs in a private directory,
optionally requires htpasswd (bcrypt) Basic auth, and is stopped by its own PID.

    with registry.running(tmp_path) as reg:          # anonymous
        reg.host                                     # "127.0.0.1:41234"
    with registry.running(tmp_path, auth=("u", "p")) as reg: ...          # htpasswd, Basic
    with registry.running(tmp_path, token=("u", "p"), tls=True) as reg: ... # Bearer, HTTPS
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from support import tokens
from support.tokens import TokenServer

BINARY = "/usr/bin/docker-registry"


@dataclass
class Registry:
    host: str
    storage: str
    pid: int
    user: str | None = None
    password: str | None = None
    tokens: TokenServer | None = None

    def ref(self, path: str) -> str:
        """``127.0.0.1:PORT/path``: a reference into this registry."""
        return f"{self.host}/{path}"

    def blob_file(self, digest: str) -> str:
        """Where the registry keeps a blob's bytes (tests corrupt it there)."""
        hexpart = digest.partition(":")[2]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexpart[:2], hexpart, "data")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _config(workdir: str, port: int, auth: str, tls: tuple[str, str] | None) -> str:
    storage = os.path.join(workdir, "storage")
    os.makedirs(storage, exist_ok=True)
    tls_conf = f"  tls:\n    certificate: {tls[1]}\n    key: {tls[0]}\n" if tls else ""
    text = (
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n{tls_conf}"
        f"{auth}"
    )
    path = os.path.join(workdir, "config.yml")
    with open(path, "w") as f:
        f.write(text)
    return path


def _wait_ready(port: int, proc: subprocess.Popen[bytes], deadline: float, tls: bool) -> None:
    context = ssl._create_unverified_context()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}")
        try:
            conn: http.client.HTTPConnection = (
                http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
                if tls
                else http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            )
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("docker-registry did not answer on /v2/ in time")


@contextmanager
def running(
    workdir: str, auth: tuple[str, str] | None = None, token: tuple[str, str] | None = None, tls: bool = False
) -> Iterator[Registry]:
    """Start a registry under ``workdir`` (which it owns) and stop it on exit: ``auth`` for
    htpasswd Basic auth, ``token`` for Bearer tokens from a ``TokenServer``, ``tls`` for
    HTTPS with a self-signed certificate."""
    if not os.access(BINARY, os.X_OK):
        raise RuntimeError(f"{BINARY} is missing: apt-get install docker-registry")
    os.makedirs(workdir, exist_ok=True)
    auth_conf = ""
    if auth is not None:
        htpasswd = os.path.join(workdir, "htpasswd")
        out = subprocess.run(["htpasswd", "-Bbn", *auth], check=True, capture_output=True, text=True).stdout
        with open(htpasswd, "w") as f:
            f.write(out)
        auth_conf = f"auth:\n  htpasswd:\n    realm: ocirt-test\n    path: {htpasswd}\n"
    pem = tokens.make_cert(workdir) if token or tls else None
    tokensrv = httpd = None
    if token is not None and pem is not None:
        tokensrv = tokens.TokenServer(pem[0], pem[1], *token)
        httpd, _ = tokens.serve(tokensrv)
        auth_conf = (
            f"auth:\n  token:\n    realm: {tokensrv.realm}\n    service: {tokens.SERVICE}\n"
            f"    issuer: {tokens.ISSUER}\n    rootcertbundle: {pem[1]}\n"
        )
    port = free_port()
    config = _config(workdir, port, auth_conf, pem if tls else None)
    log = open(os.path.join(workdir, "registry.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen([BINARY, "serve", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    creds = auth or token
    try:
        _wait_ready(port, proc, time.monotonic() + 20, tls)
        yield Registry(
            f"127.0.0.1:{port}",
            os.path.join(workdir, "storage"),
            proc.pid,
            creds[0] if creds else None,
            creds[1] if creds else None,
            tokensrv,
        )
    finally:
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
