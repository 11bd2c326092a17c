"""An HTTP client for one registry, on ``http.client`` with a keep-alive connection per thread.

Scheme: HTTPS verified against the system CA store; with ``tls_verify=False`` HTTPS without
verification, falling back to plain HTTP when the server does not speak TLS (how podman
treats ``--tls-verify=false``, and what a ``127.0.0.1:PORT`` test registry needs).
Every request carries the scope it needs; a 401 is answered once by the auth module
(Basic or Bearer) and the header is remembered per scope.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import BinaryIO

from ocirt.manager.errors import ManagerError
from ocirt.manager.images import digest as digests
from ocirt.manager.images import manifest
from ocirt.manager.images.registry import auth
from ocirt.manager.images.store import Ingest

CHUNK = 1 << 20
RETRIES = 5
USER_AGENT = "ocirtctl/0.1"
Body = bytes | tuple[BinaryIO, int, int] | None


class Response:
    """Status, headers and body of a finished or streaming request."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.raw = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()


class Client:
    def __init__(self, domain: str, *, tls_verify: bool = True, authfile: str | None = None) -> None:
        self.domain = domain
        self.host = "registry-1.docker.io" if domain == "docker.io" else domain
        self.tls_verify = tls_verify
        self.creds = auth.credentials(domain, authfile)
        self.scheme = "https"
        self._ssl = ssl.create_default_context()
        if not tls_verify:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self._local = threading.local()
        self._auth: dict[str, str] = {}
        self._auth_lock = threading.Lock()
        self._pinged = False
        self._ping_lock = threading.Lock()

    # connections

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.scheme == "https":
                conn = http.client.HTTPSConnection(self.host, timeout=60, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(self.host, timeout=60)
            self._local.conn = conn
        return conn

    def drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def ping(self) -> None:
        """``GET /v2/``: picks the scheme and learns the auth challenge once per client."""
        if self._pinged:
            return
        with self._ping_lock:
            if not self._pinged:
                self._ping()

    def _ping(self) -> None:
        try:
            resp = self._send("GET", "/v2/", {}, None)
        except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError) as exc:
            self.drop_connection()
            if self.tls_verify or self.scheme != "https":
                raise ManagerError(f"registry {self.domain}: {exc}") from None
            self.scheme = "http"
            try:
                resp = self._send("GET", "/v2/", {}, None)
            except OSError as exc2:
                raise ManagerError(f"registry {self.domain}: {exc2}") from None
        resp.read()
        if resp.status not in (200, 401):
            raise ManagerError(f"registry {self.domain}: /v2/ answered {resp.status}; not a registry?")
        self._pinged = True

    def _send(self, method: str, target: str, headers: dict[str, str], body: Body) -> Response:
        conn = self._connection()
        headers = {"User-Agent": USER_AGENT, **headers}
        if isinstance(body, tuple):
            f, offset, length = body
            f.seek(offset)
            conn.putrequest(method, target, skip_accept_encoding=True)
            headers["Content-Length"] = str(length)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            left = length
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise ManagerError("upload source ended early")
                conn.send(chunk)
                left -= len(chunk)
        else:
            if body is not None or method in ("PUT", "POST", "PATCH"):
                headers.setdefault("Content-Length", str(len(body or b"")))
            conn.request(method, target, body=body, headers=headers)
        return Response(conn.getresponse())

    # auth

    def _authorize(self, resp: Response, scope: str) -> str:
        header = resp.headers.get("WWW-Authenticate", "")
        challenge = auth.parse_challenge(header)
        if challenge.scheme == "basic":
            if self.creds is None:
                raise ManagerError(
                    f"registry {self.domain}: authentication required (ocirtctl login {self.domain})"
                )
            value = auth.basic_header(self.creds)
        elif challenge.scheme == "bearer":
            value = "Bearer " + auth.bearer_token(challenge, scope, self.creds, self._ssl)
        else:
            raise ManagerError(f"registry {self.domain}: unsupported auth challenge {header!r}")
        with self._auth_lock:
            self._auth[scope] = value
        return value

    def request(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
    ) -> Response:
        """One request, retried once after a 401 with credentials for ``scope``; a dropped
        keep-alive connection is reopened once."""
        self.ping()
        headers = dict(headers or {})
        for attempt in range(3):
            value = self._auth.get(scope)
            if value is not None:
                headers["Authorization"] = value
            try:
                resp = self._send(method, path, headers, body)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.drop_connection()
                if attempt == 2:
                    raise
                continue
            if resp.status != 401 or attempt == 2:
                return resp
            resp.read()
            if value is not None and not resp.headers.get("WWW-Authenticate", "").lower().startswith(
                "bearer"
            ):
                raise ManagerError(f"registry {self.domain}: credentials refused (401)")
            self._authorize(resp, scope)
        raise AssertionError("unreachable")

    # API

    def error(self, resp: Response, what: str) -> ManagerError:
        body = resp.read()
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            detail = body[:200].decode(errors="replace")
        return ManagerError(f"{what}: {resp.status} {resp.raw.reason}{' (' + detail + ')' if detail else ''}")

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """``(bytes, media type, digest)`` of a manifest or index; by digest it is verified."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", _pull(repo), {"Accept": manifest.ACCEPT})
        if resp.status != 200:
            raise self.error(resp, f"{self.domain}/{repo}:{ref}: manifest")
        data = resp.read()
        digest = ref if ref.startswith("sha256:") else digests.of_bytes(data)
        if digests.of_bytes(data, digest.partition(":")[0]) != digest:
            raise ManagerError(f"{self.domain}/{repo}@{ref}: manifest content does not match its digest")
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise ManagerError(
                f"{self.domain}/{repo}:{ref}: manifest digest {digest} differs from the registry's {header}"
            )
        return data, resp.headers.get("Content-Type", "").split(";")[0].strip(), digest

    def fetch_blob(
        self, repo: str, desc: manifest.Descriptor, ing: Ingest, progress: Callable[[int], None]
    ) -> None:
        """Download into ``ing``, resuming with ``Range`` after a cut connection; ``commit``
        verifies size and digest at the end."""
        failures = 0
        while True:
            try:
                self._fetch_once(repo, desc, ing, progress)
                ing.commit()
                return
            except (OSError, http.client.HTTPException) as exc:
                self.drop_connection()
                failures += 1
                if failures > RETRIES:
                    raise ManagerError(
                        f"blob {desc.digest}: download failed after {RETRIES} retries: {exc}"
                    ) from None
                time.sleep(min(0.1 * failures, 1.0))

    def _fetch_once(
        self, repo: str, desc: manifest.Descriptor, ing: Ingest, progress: Callable[[int], None]
    ) -> None:
        headers = {"Range": f"bytes={ing.offset}-"} if ing.offset else {}
        resp = self.request("GET", f"/v2/{repo}/blobs/{desc.digest}", _pull(repo), headers)
        if resp.status in (301, 302, 303, 307, 308):
            resp.read()
            resp = _follow(resp.headers.get("Location", ""), headers, self._ssl)
        if resp.status == 200 and ing.offset:
            progress(-ing.offset)
            ing.reset()
        elif resp.status == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").partition("-")[0]
            if start != str(ing.offset):
                resp.read()
                ing.reset()
                raise ConnectionError("registry answered a different range")
        elif resp.status != 200:
            raise self.error(resp, f"blob {desc.digest}")
        while chunk := resp.read(CHUNK):
            ing.write(chunk)
            progress(len(chunk))
        if ing.offset != desc.size:
            raise ConnectionError(f"connection ended at byte {ing.offset} of {desc.size}")

    def blob_exists(self, repo: str, digest: str, for_push: bool = True) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", _push(repo) if for_push else _pull(repo))
        resp.read()
        if resp.status in (200, 404):
            return resp.status == 200
        raise ManagerError(f"blob {digest}: HEAD answered {resp.status}")

    def start_upload(self, repo: str, mount: tuple[str, str] | None = None) -> str | None:
        """An upload location, or None when ``mount=(digest, from_repo)`` linked the blob."""
        query = "?" + urllib.parse.urlencode({"mount": mount[0], "from": mount[1]}) if mount else ""
        scope = _push(repo) + (f" repository:{mount[1]}:pull" if mount else "")
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/{query}", scope, body=b"")
        resp.read()
        if resp.status == 201 and mount:
            return None
        if resp.status != 202:
            raise self.error(resp, f"{self.domain}/{repo}: starting an upload")
        return self._location(resp)

    def _location(self, resp: Response) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise ManagerError(f"registry {self.domain}: upload answer without a Location")
        parsed = urllib.parse.urlsplit(loc)
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")

    def upload(
        self,
        repo: str,
        location: str,
        digest: str,
        f: BinaryIO,
        size: int,
        chunk: int,
        progress: Callable[[int], None],
    ) -> None:
        """Monolithic ``PUT`` when the blob fits in one ``chunk``, else ``PATCH`` chunks."""
        sep = "&" if "?" in location else "?"
        if size > chunk:
            offset = 0
            while offset < size:
                n = min(chunk, size - offset)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + n - 1}",
                }
                resp = self.request("PATCH", location, _push(repo), headers, (f, offset, n))
                resp.read()
                if resp.status != 202:
                    raise self.error(resp, f"blob {digest}: chunk at {offset}")
                location = self._location(resp)
                sep = "&" if "?" in location else "?"
                offset += n
                progress(n)
            body: Body = b""
        else:
            body = (f, 0, size)
        resp = self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            _push(repo),
            {"Content-Type": "application/octet-stream"},
            body,
        )
        resp.read()
        if resp.status != 201:
            raise self.error(resp, f"blob {digest}: upload")
        if size <= chunk:
            progress(size)

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        resp = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", _push(repo), {"Content-Type": media_type}, data
        )
        resp.read()
        if resp.status not in (200, 201):
            raise self.error(resp, f"{self.domain}/{repo}:{ref}: manifest upload")
        return digests.of_bytes(data)


def _pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def _push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _follow(url: str, headers: dict[str, str], context: ssl.SSLContext) -> Response:
    """A blob redirected to storage elsewhere: fetched without the registry's credentials."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ManagerError(f"registry redirected to an unusable location {url!r}")
    conn: http.client.HTTPConnection
    if parsed.scheme == "https":
        conn = http.client.HTTPSConnection(parsed.netloc, timeout=60, context=context)
    else:
        conn = http.client.HTTPConnection(parsed.netloc, timeout=60)
    conn.request("GET", parsed.path + (f"?{parsed.query}" if parsed.query else ""), headers=headers)
    return Response(conn.getresponse())
