"""Registry credentials and the token dance.

Credentials live where docker keeps them: the ``auths`` map of ``config.json`` in
``$DOCKER_CONFIG`` (default ``~/.docker``), ``auth`` being base64 of ``user:password``.
A 401 carries a ``WWW-Authenticate`` challenge: ``Basic`` means send the credentials,
``Bearer realm=…,service=…,scope=…`` means fetch a token from the realm (with the
credentials if we have some, anonymously otherwise) and send that; tokens are cached per
realm, service and scope until they expire.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ocirt.manager.errors import ManagerError

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def config_path(authfile: str | None = None) -> str:
    if authfile:
        return authfile
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def _auth_key(domain: str) -> str:
    return "https://index.docker.io/v1/" if domain == "docker.io" else domain


def _load(path: str) -> dict[str, object]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ManagerError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManagerError(f"{path}: must be a JSON object")
    return doc


def credentials(domain: str, authfile: str | None = None) -> tuple[str, str] | None:
    """``(user, password)`` stored for ``domain``, if any."""
    auths = _load(config_path(authfile)).get("auths")
    if not isinstance(auths, dict):
        return None
    for key in (_auth_key(domain), domain, f"https://{domain}", f"http://{domain}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ManagerError(
                    f"{config_path(authfile)}: auths.{key}.auth is not base64 of user:password"
                ) from None
            if sep:
                return user, password
    return None


def _write(path: str, doc: dict[str, object]) -> None:
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".config.json.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


def store(domain: str, user: str, password: str, authfile: str | None = None) -> str:
    """Save credentials for ``domain``; returns the file written."""
    path = config_path(authfile)
    doc = _load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    auths[_auth_key(domain)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    doc["auths"] = auths
    _write(path, doc)
    return path


def forget(domain: str, authfile: str | None = None) -> bool:
    path = config_path(authfile)
    doc = _load(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict) or _auth_key(domain) not in auths:
        return False
    del auths[_auth_key(domain)]
    _write(path, doc)
    return True


def basic_header(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


class NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Redirects are followed with the request's headers, credentials included: never from
    HTTPS to plain HTTP, where they would travel in the clear."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and not newurl.startswith("https:"):
            raise ManagerError(f"token server {req.full_url}: redirected from https to {newurl}: refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def bearer_token(
    challenge: Challenge, scope: str, creds: tuple[str, str] | None, ssl_context: object | None
) -> str:
    """A token for ``scope`` from the challenge's realm, cached until it expires."""
    realm = challenge.params.get("realm")
    if not realm:
        raise ManagerError("registry sent a Bearer challenge without a realm")
    service = challenge.params.get("service", "")
    scope = challenge.params.get("scope") or scope
    key = (realm, service, scope)
    with _lock:
        hit = _tokens.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
    query = urllib.parse.urlencode([(k, v) for k, v in (("service", service), ("scope", scope)) if v])
    req = urllib.request.Request(f"{realm}?{query}" if query else realm)
    if creds is not None:
        req.add_header("Authorization", basic_header(creds))
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl_context),  # type: ignore[arg-type]
        NoDowngrade(),
    )
    try:
        with opener.open(req, timeout=60) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ManagerError(
            f"token server {realm}: {exc.code} {exc.reason} (wrong credentials? try ocirtctl login)"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ManagerError(f"token server {realm}: {exc}") from None
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str):
        raise ManagerError(f"token server {realm}: no token in its answer")
    ttl = doc.get("expires_in") if isinstance(doc.get("expires_in"), int) else 60
    with _lock:
        _tokens[key] = (token, time.monotonic() + max(int(ttl) - 10, 5))
    return token
