"""``ocirtctl`` image commands: pull, push, images, inspect, history, tag, rmi, prune, save,
load, import, login, logout, and the same under ``ocirtctl image``.

Each handler parses nothing itself: argparse hands it a namespace, it calls the images
service and prints. Top-level ``inspect`` belongs to the containers group, which may fall
back to ``image_document`` for a name that is an image.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocirt.manager import events, formats
from ocirt.manager.containers import present, units
from ocirt.manager.errors import ManagerError
from ocirt.manager.gotemplate import Record
from ocirt.manager.images import archive, reference, service, tarball
from ocirt.manager.images import push as pushing
from ocirt.manager.images.records import ImageRecord
from ocirt.manager.images.registry import auth
from ocirt.manager.images.registry.client import Client

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _guard(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A failing system call (an unwritable ``-o`` path, a full disk) is one line too."""

    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except OSError as exc:
            raise ManagerError(f"{args.command}: {exc}") from None

    return run


def _tls(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tls-verify",
        default="true",
        choices=("true", "false"),
        help="verify the registry's TLS certificate; false also allows plain HTTP",
    )
    p.add_argument("--authfile", default=None, help="credentials file (default: $DOCKER_CONFIG/config.json)")


def _add_pull(sub: Sub, name: str = "pull") -> None:
    p = sub.add_parser(name, help="pull an image from a registry")
    p.add_argument("image")
    p.add_argument("--platform", default=None, help="os/arch[/variant] (default: the host's)")
    p.add_argument("-q", "--quiet", action="store_true")
    _tls(p)
    p.set_defaults(func=_guard(cmd_pull))


def _add_push(sub: Sub, name: str = "push") -> None:
    p = sub.add_parser(name, help="push an image to a registry")
    p.add_argument("image")
    p.add_argument("destination", nargs="?", default=None)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--chunk-size", default=None, help="bytes per upload chunk")
    _tls(p)
    p.set_defaults(func=_guard(cmd_push))


def _add_list(sub: Sub, name: str, aliases: list[str]) -> None:
    p = sub.add_parser(name, aliases=aliases, help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.add_argument("-a", "--all", action="store_true", help="accepted for docker compatibility")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="full ids")
    p.add_argument("--format", default="table", help="table, json or a Go template")
    p.set_defaults(func=_guard(cmd_images))


def _add_inspect(sub: Sub) -> None:
    p = sub.add_parser("inspect", help="show images as JSON")
    p.add_argument("names", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", default=None, help="Go template run over each document")
    p.set_defaults(func=_guard(cmd_inspect))


def _add_rm(sub: Sub, name: str, aliases: list[str]) -> None:
    p = sub.add_parser(name, aliases=aliases, help="remove images")
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="remove an id with several names")
    p.set_defaults(func=_guard(cmd_rmi))


def _add_simple(sub: Sub) -> dict[str, argparse.ArgumentParser]:
    out = {}
    p = out["history"] = sub.add_parser("history", help="show an image's layers and how they were made")
    p.add_argument("image")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", default="table")
    p.set_defaults(func=_guard(cmd_history))
    p = out["tag"] = sub.add_parser("tag", help="give an image another name")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=_guard(cmd_tag))
    p = out["save"] = sub.add_parser("save", help="write images to a tar archive")
    p.add_argument("images", nargs="+")
    p.add_argument("-o", "--output", default=None)
    p.add_argument("--format", default="docker-archive", choices=archive.FORMATS)
    p.set_defaults(func=_guard(cmd_save))
    p = out["load"] = sub.add_parser("load", help="load images from a tar archive")
    p.add_argument("-i", "--input", default=None)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_guard(cmd_load))
    p = out["import"] = sub.add_parser("import", help="make an image from a rootfs tarball")
    p.add_argument("file", help="tarball, or - for stdin")
    p.add_argument("reference", nargs="?", default=None)
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction to apply")
    p.add_argument("-m", "--message", default="")
    p.set_defaults(func=_guard(cmd_import))
    return out


def _add_prune(sub: Sub) -> None:
    p = sub.add_parser("prune", help="remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (never asks)")
    p.set_defaults(func=_guard(cmd_prune))


def register(sub: Sub) -> None:
    """Add this group's subcommands to ``sub``."""
    _add_pull(sub)
    _add_push(sub)
    _add_list(sub, "images", [])
    _add_rm(sub, "rmi", [])
    _add_simple(sub)
    login = sub.add_parser("login", help="store credentials for a registry")
    login.add_argument("server")
    login.add_argument("-u", "--username", default=None)
    login.add_argument("-p", "--password", default=None)
    login.add_argument("--password-stdin", action="store_true")
    _tls(login)
    login.set_defaults(func=_guard(cmd_login))
    logout = sub.add_parser("logout", help="forget credentials for a registry")
    logout.add_argument("server")
    logout.add_argument("--authfile", default=None)
    logout.set_defaults(func=_guard(cmd_logout))
    image = sub.add_parser("image", help="manage images").add_subparsers(
        dest="image_command", metavar="COMMAND"
    )
    _add_pull(image)
    _add_push(image)
    _add_list(image, "ls", ["list"])
    _add_inspect(image)
    _add_rm(image, "rm", [])
    _add_simple(image)
    _add_prune(image)


def cmd_pull(args: argparse.Namespace) -> int:
    rec = service.pull(
        args.root,
        args.image,
        tls_verify=args.tls_verify == "true",
        platform=args.platform,
        quiet=args.quiet,
        authfile=args.authfile,
    )
    print(rec.id if args.quiet else f"Digest: {rec.manifest_digest}\n{rec.id}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    digest = pushing.push(
        args.root,
        args.image,
        args.destination,
        tls_verify=args.tls_verify == "true",
        quiet=args.quiet,
        authfile=args.authfile,
        chunk_size=pushing.CHUNK_SIZE
        if args.chunk_size is None
        else units.size(args.chunk_size, "--chunk-size"),
    )
    pushed = reference.parse(args.destination or args.image)
    name = reference.Reference(pushed.domain, pushed.path).familiar
    events.record(args.root, "image", "push", pushed.familiar, {"name": name})
    print(digest if args.quiet else f"Digest: {digest}")
    return 0


def _ago(added: float) -> str:
    delta = max(time.time() - added, 0)
    for unit, secs in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if delta >= secs:
            return f"{int(delta // secs)} {unit} ago"
    return "Less than a minute ago" if delta >= 1 else "Less than a second ago"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n = n / 1000  # type: ignore[assignment]
    return f"{n}B"


def _rows(rec: ImageRecord) -> list[tuple[str, str, str]]:
    """(repository, tag, digest) for each name; ``<none>`` for an untagged image."""
    digest_of = {rd.partition("@")[0]: rd.partition("@")[2] for rd in rec.repo_digests}
    rows = []
    for name in rec.names:
        ref = reference.parse(name)
        rows.append(
            (ref.familiar.rpartition(":")[0], ref.tag or "<none>", digest_of.get(ref.repository, "<none>"))
        )
    if not rows:
        for repo, digest in digest_of.items():
            rows.append((reference.parse(repo, default_tag=False).familiar, "<none>", digest))
    return rows or [("<none>", "<none>", rec.manifest_digest)]


def cmd_images(args: argparse.Namespace) -> int:
    recs = service.list_images(args.root)
    if args.quiet:
        seen = []
        for rec in recs:
            ident = rec.id if args.no_trunc else rec.short_id
            if ident not in seen:
                seen.append(ident)
        print("\n".join(seen)) if seen else None
        return 0
    if args.format == "json":
        print(json.dumps([_summary(r) for r in recs], indent=4))
        return 0
    rows = [_context(rec, *row, args.no_trunc) for rec in recs for row in _rows(rec)]
    columns = ["Repository", "Tag", *(["Digest"] if args.digests else []), "ID", "CreatedSince", "Size"]
    default = "table " + "\t".join(f"{{{{.{c}}}}}" for c in columns)
    formats.print_list(args.format, rows, IMAGE_HEADERS, default)
    return 0


# docker's column names for ``images --format 'table ...'``
IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


def _context(rec: ImageRecord, repo: str, tag: str, digest: str, no_trunc: bool) -> Record:
    """What ``images --format`` templates see: docker's image context, every field a string."""
    fields = {
        "Containers": "N/A",
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(rec.added)),
        "CreatedSince": _ago(rec.added),
        "Digest": digest,
        "ID": rec.id if no_trunc else rec.short_id,
        "Repository": repo,
        "SharedSize": "N/A",
        "Size": _size(rec.size),
        "Tag": tag,
        "UniqueSize": "N/A",
        "VirtualSize": _size(rec.size),
    }
    return Record("*formatter.imageContext", fields)


def _summary(rec: ImageRecord) -> dict[str, Any]:
    return {
        "Id": rec.id,
        "RepoTags": list(rec.names),
        "RepoDigests": list(rec.repo_digests),
        "Digest": rec.manifest_digest,
        "Created": rec.created,
        "Size": rec.size,
        "Platform": rec.platform,
    }


def image_document(root: str, rec: ImageRecord) -> dict[str, Any]:
    return present.image_document(rec, service.config(root, rec))


def cmd_inspect(args: argparse.Namespace) -> int:
    docs = [image_document(args.root, service.get(args.root, name)) for name in args.names]
    if formats.is_template(args.format):
        formats.print_inspect(args.format, docs)
    else:
        print(json.dumps(docs, indent=4))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    rec = service.get(args.root, args.image)
    cfg = service.config(args.root, rec)
    doc = service.manifest_of(args.root, rec)
    sizes = [int(layer.get("size", 0)) for layer in doc.get("layers", [])]
    rows = []
    for item in reversed(cfg.get("history") or []):
        empty = bool(item.get("empty_layer"))
        size = 0 if empty or not sizes else sizes.pop()
        rows.append((item.get("created", ""), item.get("created_by", ""), size, item.get("comment", "")))
    if args.quiet:
        print(rec.id if args.no_trunc else rec.short_id)
        return 0
    if args.format == "json":
        keys = ("Created", "CreatedBy", "Size", "Comment")
        print(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=4))
        return 0
    contexts = [_history_context(rec, i, r, args.no_trunc) for i, r in enumerate(rows)]
    formats.print_list(args.format, contexts, HISTORY_HEADERS, HISTORY_TABLE)
    return 0


HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


# docker's column names for ``history --format 'table ...'``
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


def _history_context(rec: ImageRecord, i: int, row: tuple[str, str, int, str], no_trunc: bool) -> Record:
    """What ``history --format`` templates see: docker's history context."""
    created, by, size, comment = row
    ident = (rec.id if no_trunc else rec.short_id) if i == 0 else "<missing>"
    when = _epoch(created)
    fields = {
        "Comment": comment,
        "CreatedAt": created,
        "CreatedBy": by if no_trunc or len(by) <= 45 else by[:44] + "…",
        "CreatedSince": _ago(when) if when is not None else "",
        "ID": ident,
        "Size": _size(size),
    }
    return Record("*formatter.historyContext", fields)


def _epoch(created: str) -> float | None:
    """An image config's RFC 3339 time in seconds (its nanoseconds cut to what Python reads)."""
    import datetime
    import re

    text = re.sub(r"(\.\d{6})\d+", r"\1", created)
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def cmd_tag(args: argparse.Namespace) -> int:
    service.tag(args.root, args.source, args.target)
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    for name in args.images:
        for line in service.remove(args.root, name, force=args.force):
            print(line)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    gone = service.prune(args.root, all_images=args.all)
    for ident in gone:
        print(f"deleted: {ident}")
    print(f"Total reclaimed images: {len(gone)}")
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    if args.output is None:
        if sys.stdout.isatty():
            raise ManagerError("save: refusing to write an archive to a terminal; use -o or redirect stdout")
        archive.save(args.root, args.images, sys.stdout.buffer, args.format)
        return 0
    tmp = f"{args.output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            archive.save(args.root, args.images, f, args.format)
        os.rename(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def _spooled(path: str | None) -> tuple[str, bool]:
    """A seekable file for ``path`` (``-``/None: stdin copied to a temporary file)."""
    if path not in (None, "-"):
        if not os.path.isfile(path):
            raise ManagerError(f"{path}: no such file")
        return path, False
    fd, tmp = tempfile.mkstemp(prefix="ocirtctl-")
    with os.fdopen(fd, "wb") as f:
        while chunk := sys.stdin.buffer.read(1 << 20):
            f.write(chunk)
    return tmp, True


def cmd_load(args: argparse.Namespace) -> int:
    path, temporary = _spooled(args.input)
    try:
        for rec in archive.load(args.root, path):
            events.record(args.root, "image", "load", rec.id, {"name": rec.id})
            for name in rec.names or (rec.id,):
                label = "image" if name != rec.id else "image ID"
                print(f"Loaded {label}: {reference.parse(name).familiar if name != rec.id else name}")
    finally:
        if temporary:
            os.unlink(path)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path, temporary = _spooled(args.file)
    try:
        rec = tarball.import_tarball(args.root, path, args.reference, args.change, args.message)
    finally:
        if temporary:
            os.unlink(path)
    events.record(args.root, "image", "import", rec.id, {"name": rec.id})
    print(rec.id)
    return 0


def _domain(server: str) -> str:
    server = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    return server.removesuffix("/v1").removesuffix("/v2") if "/" in server else server


def cmd_login(args: argparse.Namespace) -> int:
    domain = _domain(args.server)
    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = args.password if args.password is not None else getpass.getpass("Password: ")
    if not user or not password:
        raise ManagerError("login: username and password are required")
    client = Client(domain, tls_verify=args.tls_verify == "true")
    client.creds = (user, password)
    resp = client.request("GET", "/v2/", "registry:catalog:*")
    resp.read()
    if resp.status != 200:
        raise ManagerError(f"login to {domain} failed: {resp.status} {resp.raw.reason}")
    auth.store(domain, user, password, args.authfile)
    print("Login Succeeded")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    domain = _domain(args.server)
    if not auth.forget(domain, args.authfile):
        raise ManagerError(f"not logged in to {domain}")
    print(f"Removing login credentials for {domain}")
    return 0
