"""An HTTP client for one registry, on ``http.client`` with a keep-alive connection per thread.

Scheme: HTTPS verified against the system CA store; with ``tls_verify=False`` HTTPS without
verification, falling back to plain HTTP when the server does not speak TLS (how podman
treats ``--tls-verify=false``), which is also the default for a loopback registry, as docker's.
Every request carries the scope it needs; a 401 is answered once by the auth module
(Basic or Bearer) and the header is remembered per scope.

Proxies come from the environment as curl and Go read it: ``https_proxy``/``HTTPS_PROXY`` (a
CONNECT tunnel, so TLS stays end to end), ``http_proxy``/``HTTP_PROXY`` (absolute-form
requests), and ``no_proxy``/``NO_PROXY`` (``*``, host names and their subdomains, ``HOST:PORT``,
CIDR blocks). A blob's redirect may be relative (RFC 7231 7.1.2) and never leaves HTTPS.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
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
MAX_REDIRECTS = 5
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


def insecure_by_default(host: str) -> bool:
    """docker's default insecure registries: a loopback address (127.0.0.0/8, ::1) or
    ``localhost``, with or without a port; for these TLS is tried unverified, then plain HTTP."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Client:
    def __init__(self, domain: str, *, tls_verify: bool = True, authfile: str | None = None) -> None:
        self.domain = domain
        self.host = "registry-1.docker.io" if domain == "docker.io" else domain
        self.tls_verify = tls_verify and not insecure_by_default(self.host)
        self.creds = auth.credentials(domain, authfile)
        self.scheme = "https"
        self._ssl = ssl.create_default_context()
        if not self.tls_verify:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self._local = threading.local()
        self._auth: dict[str, str] = {}
        self._auth_lock = threading.Lock()
        self._pinged = False
        self._ping_lock = threading.Lock()

    # connections

    def _connection(self) -> Route:
        route: Route | None = getattr(self._local, "conn", None)
        if route is None:
            route = open_route(self.scheme, self.host, self._ssl)
            self._local.conn = route
        return route

    def drop_connection(self) -> None:
        route = getattr(self._local, "conn", None)
        if route is not None:
            route.conn.close()
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
                hint = (
                    " (a registry without a trusted certificate needs --tls-verify=false)"
                    if self.tls_verify
                    else ""
                )
                raise ManagerError(f"registry {self.domain}: {exc}{hint}") from None
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
        route = self._connection()
        conn, target = route.conn, route.prefix + target
        headers = {"User-Agent": USER_AGENT, **route.headers, **headers}
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

    def get_blob(self, repo: str, digest: str, headers: dict[str, str] | None = None) -> Response:
        """``GET`` a blob, following the registry's redirect to its storage."""
        path = f"/v2/{repo}/blobs/{digest}"
        resp = self.request("GET", path, _pull(repo), headers)
        if resp.status in REDIRECTS:
            resp = _follow(f"{self.scheme}://{self.host}{path}", resp, headers or {}, self._ssl)
        return resp

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
        resp = self.get_blob(repo, desc.digest, headers)
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


REDIRECTS = (301, 302, 303, 307, 308)


class Route:
    """A connection to a registry or its storage, direct or through a proxy: ``prefix`` makes
    a request's target absolute for a plain HTTP proxy; ``headers`` go with every request."""

    def __init__(
        self, conn: http.client.HTTPConnection, prefix: str = "", headers: dict[str, str] | None = None
    ):
        self.conn, self.prefix, self.headers = conn, prefix, headers or {}


def open_route(scheme: str, netloc: str, context: ssl.SSLContext) -> Route:
    """A connection to ``scheme://netloc`` as the environment's proxy settings say."""
    where = urllib.parse.urlsplit(f"//{netloc}")
    host, port = where.hostname or "", where.port or (443 if scheme == "https" else 80)
    proxy = proxy_for(scheme, host, port)
    if proxy is None:
        if scheme == "https":
            return Route(http.client.HTTPSConnection(netloc, timeout=60, context=context))
        return Route(http.client.HTTPConnection(netloc, timeout=60))
    login = {}
    if proxy.username is not None:
        pair = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        login["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    if scheme == "https":
        tunnel = http.client.HTTPSConnection(
            proxy.hostname or "", proxy.port or 80, timeout=60, context=context
        )
        tunnel.set_tunnel(host, port, login)
        return Route(tunnel)
    return Route(
        http.client.HTTPConnection(proxy.hostname or "", proxy.port or 80, timeout=60),
        f"http://{netloc}",
        login,
    )


def _env(name: str) -> str:
    return os.environ.get(name.lower()) or os.environ.get(name.upper()) or ""


def proxy_for(scheme: str, host: str, port: int) -> urllib.parse.SplitResult | None:
    """The proxy for ``scheme`` unless ``no_proxy`` exempts ``host:port``; an ``http://`` URL."""
    raw = _env(f"{scheme}_proxy")
    if not raw or bypassed(host, port, _env("no_proxy")):
        return None
    proxy = urllib.parse.urlsplit(raw if "://" in raw else f"http://{raw}")
    if proxy.scheme != "http" or not proxy.hostname:
        raise ManagerError(f"{scheme}_proxy: unsupported proxy {raw!r} (expected http://HOST:PORT)")
    return proxy


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().strip("[]")
    for entry in re.split(r"[,\s]+", no_proxy.lower()):
        if entry == "*":
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, sep, only = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if sep and only != str(port):
            continue
        name = name.removeprefix("*").removeprefix(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _follow(base: str, resp: Response, headers: dict[str, str], context: ssl.SSLContext) -> Response:
    """A blob redirected to storage elsewhere: fetched without the registry's credentials.
    ``Location`` is resolved against the URL that answered; HTTPS never goes down to HTTP."""
    for _ in range(MAX_REDIRECTS):
        location = resp.headers.get("Location", "")
        resp.read()
        url = urllib.parse.urljoin(base, location)
        parsed = urllib.parse.urlsplit(url)
        if not location or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ManagerError(f"registry redirected to an unusable location {location!r}")
        if urllib.parse.urlsplit(base).scheme == "https" and parsed.scheme == "http":
            raise ManagerError(f"registry redirected from https to plain http ({url}): refused")
        route = open_route(parsed.scheme, parsed.netloc, context)
        target = route.prefix + parsed.path + (f"?{parsed.query}" if parsed.query else "")
        route.conn.request("GET", target, headers={"User-Agent": USER_AGENT, **route.headers, **headers})
        resp, base = Response(route.conn.getresponse()), url
        if resp.status not in REDIRECTS:
            return resp
    raise ManagerError(f"registry redirected more than {MAX_REDIRECTS} times from {base}")
