"""Exec over the Engine API: ``create`` records what to run, ``start`` runs it through the
container's shim with the client's connection hijacked as its stdio (``Upgrade: tcp``, 101),
``json`` tells its exit code (the docker CLI and docker-py ask for it after the stream).

Exec instances live in the service's memory, as dockerd keeps them: they name a process of
the running container, so they mean nothing once the service is gone."""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from ocirt.manager import db
from ocirt.manager.api.server import ApiError, Reply, Request
from ocirt.manager.containers import start, status, store
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError
from ocirt.shim.client import ShimError


@dataclass
class Exec:
    id: str
    container: str
    args: list[str]
    tty: bool
    stdin: bool
    env: list[str]
    user: str | None
    workdir: str | None
    running: bool = False
    exit_code: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


EXECS: dict[str, Exec] = {}


def create_exec(ctx: Context, req: Request) -> Reply:
    c = status.refresh(ctx, store.get(db.connect(ctx.root), req.params["id"]))
    if not c.state.can_exec:
        raise ApiError(409, f"container {c.id} is not running")
    body = req.json()
    args = body.get("Cmd")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ApiError(400, "Cmd: a command (a list of strings) is required")
    user = body.get("User") or None
    if user:
        from ocirt.manager.images.bundle import resolve_user

        uid, gid, _ = resolve_user(c.plan["rootfs"], user)
        user = f"{uid}:{gid}"
    env = body.get("Env") or []
    ex = Exec(
        secrets.token_hex(32),
        c.id,
        args,
        bool(body.get("Tty")),
        bool(body.get("AttachStdin")),
        env,
        user,
        body.get("WorkingDir") or None,
    )
    EXECS[ex.id] = ex
    return Reply(201, {"Id": ex.id})


def _get(req: Request) -> Exec:
    ex = EXECS.get(req.params["id"])
    if ex is None:
        raise ApiError(404, f"No such exec instance: {req.params['id']}")
    return ex


def inspect_exec(ctx: Context, req: Request) -> Reply:
    ex = _get(req)
    return Reply(
        200,
        {
            "ID": ex.id,
            "ContainerID": ex.container,
            "Running": ex.running,
            "ExitCode": ex.exit_code,
            "OpenStdin": ex.stdin,
            "OpenStdout": True,
            "OpenStderr": True,
            "CanRemove": False,
            "DetachKeys": "",
            "Pid": 0,
            "ProcessConfig": {
                "tty": ex.tty,
                "entrypoint": ex.args[0],
                "arguments": ex.args[1:],
                "privileged": False,
                "user": ex.user or "",
            },
        },
    )


def start_exec(ctx: Context, req: Request) -> Reply | None:
    ex = _get(req)
    body = req.json()
    with ex.lock:
        if ex.running or ex.exit_code is not None:
            raise ApiError(409, f"exec {ex.id} has already run")
        ex.running = True
    c = store.get(db.connect(ctx.root), ex.container)
    client = start.shim_client(ctx, c)
    if body.get("Detach"):
        threading.Thread(target=_detached, args=(client, ex), daemon=True).start()
        return Reply(200, b"", "text/plain")
    sock = req.hijack(raw=ex.tty)
    out = _Framed(sock, 1, ex.tty)
    err = _Framed(sock, 2, ex.tty)
    try:
        ex.exit_code = client.exec(
            ex.args, tty=ex.tty, stdin=sock.fileno() if ex.stdin else None, stdout=out.fd, stderr=err.fd,
            env=ex.env, user=ex.user, cwd=ex.workdir,
        )  # fmt: skip
    except (ShimError, ManagerError) as exc:
        ex.exit_code = 126
        os.write(err.fd, f"exec: {exc}\n".encode())
    finally:
        ex.running = False
        out.close()
        err.close()
    return None


class _Framed:
    """A pipe whose reader copies what the exec writes to the client, in docker's
    multiplexed frames (stream id, size) unless the exec has a tty."""

    def __init__(self, sock: Any, stream: int, raw: bool) -> None:
        self.fd, reader = os.pipe()[::-1]
        self.thread = threading.Thread(target=self._pump, args=(reader, sock, stream, raw), daemon=True)
        self.thread.start()

    @staticmethod
    def _pump(reader: int, sock: Any, stream: int, raw: bool) -> None:
        try:
            while data := os.read(reader, 65536):
                head = b"" if raw else bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big")
                try:
                    sock.sendall(head + data)
                except OSError:
                    continue  # the client left: drain, so the exec is never blocked on us
        finally:
            os.close(reader)

    def close(self) -> None:
        os.close(self.fd)
        self.thread.join(timeout=10)


def _detached(client: Any, ex: Exec) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        ex.exit_code = client.exec(
            ex.args, tty=False, stdout=devnull, stderr=devnull, env=ex.env, user=ex.user, cwd=ex.workdir
        )
    except (ShimError, ManagerError):
        ex.exit_code = 126
    finally:
        ex.running = False
        os.close(devnull)


ROUTES = [
    ("POST", "/containers/{id}/exec", create_exec),
    ("POST", "/exec/{id}/start", start_exec),
    ("GET", "/exec/{id}/json", inspect_exec),
]
