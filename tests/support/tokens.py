"""A Bearer token server for the test registry (the distribution spec's token flow).

The registry answers 401 with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``; this
server, on 127.0.0.1, checks Basic credentials and returns a JWT (RS256, signed with
``openssl``, its certificate in the ``x5c`` header so the registry can check it against its
``rootcertbundle``) granting the requested actions; anonymous callers are granted nothing.
Every request is recorded for tests to inspect (scopes asked, with or without credentials).
"""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

SERVICE = "ocirt-test-registry"
ISSUER = "ocirt-test-issuer"


def make_cert(workdir: str) -> tuple[str, str]:
    """A self-signed key and certificate for 127.0.0.1 (TLS and token signing)."""
    key, cert = f"{workdir}/key.pem", f"{workdir}/cert.pem"
    req = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
    san = ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run([*req, *san, "-keyout", key, "-out", cert], check=True, capture_output=True)
    return key, cert


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Request:
    scopes: list[str]
    user: str | None


@dataclass
class TokenServer:
    key: str
    cert: str
    user: str
    password: str
    requests: list[Request] = field(default_factory=list)
    realm: str = ""

    def token(self, user: str | None, scopes: list[str]) -> str:
        der = subprocess.run(
            ["openssl", "x509", "-in", self.cert, "-outform", "DER"], capture_output=True, check=True
        )
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der.stdout).decode()]}
        access = []
        for scope in scopes if user else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing}.{_b64(sig)}"

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                scopes = [s for value in query.get("scope", []) for s in value.split()]
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    got = base64.b64decode(auth[6:]).decode()
                    if got != f"{server.user}:{server.password}":
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = server.user
                server.requests.append(Request(scopes, user))
                body = json.dumps({"token": server.token(user, scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def serve(server: TokenServer) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    """Start ``server`` on a free loopback port; the caller shuts it down."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), server.handler())
    server.realm = f"http://127.0.0.1:{httpd.server_address[1]}/token"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread
