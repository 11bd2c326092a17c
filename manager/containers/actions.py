"""What each ``ocirtctl`` container command does, given its parsed arguments.

Kept apart from the parser (``ocirt.manager.commands.containers``) so that building the
command line imports none of this: every ``ocirtctl`` call parses, only one command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocirt.manager import db
from ocirt.manager.containers import create as creating
from ocirt.manager.containers import (
    exits,
    flags,
    layout,
    logs,
    options,
    remove,
    start,
    status,
    store,
    units,
)
from ocirt.manager.containers import spec as specmod
from ocirt.manager.containers import stop as stopping
from ocirt.manager.containers.attach import attach_container, run_foreground
from ocirt.manager.containers.runtime import Context
from ocirt.manager.errors import ManagerError
from ocirt.shim.logs import DRIVERS as LOG_DRIVERS

if TYPE_CHECKING:
    from ocirt.manager.gotemplate import Record


def ctx_of(args: argparse.Namespace) -> Context:
    return Context.make(args.root, args.runtime)


def _tls(ns: argparse.Namespace) -> bool:
    return str(ns.tls_verify).lower() not in ("false", "0", "no")


def cmd_create(args: argparse.Namespace) -> int:
    c = creating.create(ctx_of(args), flags.from_args(args), _tls(args))
    print(c.id)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    opts = flags.from_args(args)
    if args.detach and opts.auto_remove and opts.interactive:
        opts.interactive = False
    c = creating.create(ctx, opts, _tls(args))
    try:
        if not args.detach:
            return run_foreground(ctx, c.id)
        start.start(ctx, c.id)
    except BaseException:
        if opts.auto_remove:
            remove.remove(ctx, c.id, force=True, volumes=True)
        raise
    print(c.id)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    if args.attach:
        if len(args.containers) != 1:
            raise ManagerError("start -a: attach to one container at a time")
        return run_foreground(ctx, args.containers[0], stdin=args.interactive)
    return _each(args.containers, lambda ref: start.start(ctx, ref))


def _each(refs: list[str], action: Callable[[str], object], echo: bool = True) -> int:
    """Act on every reference; report each failure and exit non-zero if any failed."""
    failed = 0
    for ref in refs:
        try:
            action(ref)
        except ManagerError as exc:
            print(f"ocirtctl: {exc}", file=sys.stderr)
            failed = 1
            continue
        if echo:
            print(ref)
    return failed


def _time(text: str | None) -> int | None:
    return None if text is None else units.integer(text, "-t/--time", 0, units.SECONDS_MAX)


def cmd_stop(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    timeout = _time(args.time)
    return _each(args.containers, lambda ref: stopping.stop(ctx, ref, timeout))


def cmd_kill(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    return _each(args.containers, lambda ref: stopping.kill(ctx, ref, args.signal))


def cmd_restart(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    timeout = _time(args.time)
    return _each(args.containers, lambda ref: stopping.restart(ctx, ref, timeout))


def cmd_pause(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    return _each(args.containers, lambda ref: stopping.pause(ctx, ref, resume=args.resume))


def cmd_rm(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    return _each(args.containers, lambda ref: remove.remove(ctx, ref, args.force, args.volumes))


def cmd_prune(args: argparse.Namespace) -> int:
    for cid in remove.prune(ctx_of(args)):
        print(cid)
    return 0


def matches(c: store.Container, filters: list[str]) -> bool:
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep:
            raise ManagerError(f"--filter: expected KEY=VALUE, got {text!r}")
        if key == "status" and c.state != value:
            return False
        if key == "name" and value not in c.name:
            return False
        if key == "id" and not c.id.startswith(value):
            return False
        if key == "label":
            k, has, v = value.partition("=")
            if k not in c.options.labels or (has and c.options.labels[k] != v):
                return False
        if key not in ("status", "name", "id", "label"):
            raise ManagerError(f"--filter: unsupported key {key!r} (status, name, id, label)")
    return True


def cmd_ps(args: argparse.Namespace) -> int:
    from ocirt.manager import formats
    from ocirt.manager.containers import present

    last = 1 if args.latest else None if args.last is None else units.integer(args.last, "--last", -1)
    last = None if last == -1 else last  # docker's default -1: no limit
    every = (
        args.all or last is not None or any(f.startswith("status=") for f in args.filter)
    )  # as docker does
    rows = [c for c in status.listing(ctx_of(args)) if (every or c.state.live) and matches(c, args.filter)]
    if last is not None:
        rows = sorted(rows, key=lambda c: c.created)[len(rows) - last :] if last else []
    if args.quiet:
        for c in rows:
            print(c.id[:12])
        return 0
    if args.format == "json":
        print(json.dumps([present.ps_row(c) for c in rows], indent=2))
        return 0
    trunc = not args.no_trunc
    contexts = [present.ps_context(c, trunc) for c in rows]
    formats.print_list(args.format, contexts, present.PS_HEADERS, PS_TABLE)
    return 0


PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
STATS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)


def _get(ctx: Context, ref: str) -> store.Container:
    return status.refresh(ctx, store.get(db.connect(ctx.root), ref))


def cmd_logs(args: argparse.Namespace) -> int:
    tail = None if args.tail in (None, "all") else units.integer(args.tail, "--tail")
    logs.since_filter(args.since)  # a bad --since is named before the container is looked up
    ctx = ctx_of(args)
    c = _get(ctx, args.container)
    driver = c.options.log_driver
    if LOG_DRIVERS[driver].parse is None:
        raise ManagerError("configured logging driver does not support reading", 1)  # docker's words
    path = layout.log_path(ctx.root, c.id)
    max_file = int(c.options.log_opts.get("max-file", "1"))
    shown, offset = logs.collect(path, driver, max_file, args.since, tail)

    def emit(line: logs.Line) -> None:
        out = sys.stderr.buffer if line.stream == "stderr" else sys.stdout.buffer
        out.write((line.time.encode() + b" " if args.timestamps else b"") + line.text)
        out.flush()

    for line in shown:
        emit(line)
    if args.follow:

        def running() -> bool:
            return _get(ctx, c.id).state.live

        logs.follow(path, driver, offset, running, emit)
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    return attach_container(ctx_of(args), args.container, stdin=not args.no_stdin)


def cmd_exec(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    c = _get(ctx, args.container)
    if not c.state.can_exec:
        raise ManagerError(f"container {c.name} is not running")
    if not args.command:
        raise ManagerError("exec: a command is required")
    env = [e for path in args.env_file for e in options.env_file_entries(path)]
    env += [e for e in (options.env_entry(t) for t in args.env) if e is not None]
    if args.user:
        from ocirt.manager.images.bundle import resolve_user

        uid, gid, _ = resolve_user(c.plan["rootfs"], args.user)
        args.user = f"{uid}:{gid}"
    exec_id = {"execID": os.urandom(32).hex()}  # docker's exec events name the exec by it
    shown = " ".join(args.command)
    store.event(ctx.root, c, f"exec_create: {shown}", exec_id)
    store.event(ctx.root, c, f"exec_start: {shown}", exec_id)
    if args.detach:
        argv = ["exec", "-d"] + [f"--env={e}" for e in env]
        argv += (["--user", args.user] if args.user else []) + (
            ["--cwd", args.workdir] if args.workdir else []
        )
        ctx.run(*argv, c.id, *args.command)
        return 0
    from ocirt.manager.containers.attach import exec_in

    code = exec_in(ctx, c, args.command, args.interactive, args.tty, env, args.user, args.workdir)
    store.event(ctx.root, c, "exec_die", {**exec_id, "exitCode": str(code)})
    return code


def cmd_inspect(args: argparse.Namespace) -> int:
    """docker's top-level inspect: containers, then images, networks and volumes (or the one
    ``--type``); what is found is printed, and a missing one fails with status 1 after it."""
    from ocirt.manager import formats

    ctx = ctx_of(args)
    docs, missing = [], []
    for ref in args.containers:
        doc = _find_object(ctx, ref, args.type)
        if doc is None:
            missing.append(ref)
        else:
            docs.append(doc)
    if formats.is_template(args.format):
        formats.print_inspect(args.format, docs)
    else:
        print(json.dumps(docs, indent=4))
    if missing:
        kind = "object" if args.type is None else args.type
        raise ManagerError("\n".join(f"Error: No such {kind}: {ref}" for ref in missing), exit_code=1)
    return 0


OBJECT_TYPES = ("container", "image", "network", "volume")


def _find_object(ctx: Context, ref: str, kind: str | None) -> dict[str, Any] | None:
    for candidate in (kind,) if kind else OBJECT_TYPES:
        doc = _LOOKUP[candidate](ctx, ref)
        if doc is not None:
            return doc
    return None


def container_document(ctx: Context, ref: str) -> dict[str, Any] | None:
    found = store.find(db.connect(ctx.root), ref)
    return None if found is None else _inspect_document(ctx, status.refresh(ctx, found))


def _image_document(ctx: Context, ref: str) -> dict[str, Any] | None:
    from ocirt.manager.commands.images import image_document
    from ocirt.manager.images import service as images

    rec = images.find(ctx.root, ref)
    return None if rec is None else image_document(ctx.root, rec)


def _network_document(ctx: Context, ref: str) -> dict[str, Any] | None:
    from ocirt.manager.containers import present
    from ocirt.manager.network import service
    from ocirt.manager.network import store as netstore

    if netstore.find_network(db.connect(ctx.root), ref) is None:
        return None
    return present.network_document(service.inspect_network(ctx.root, ref))


def _volume_document(ctx: Context, ref: str) -> dict[str, Any] | None:
    from ocirt.manager.containers import present
    from ocirt.manager.volumes import store as volstore

    vol = volstore.find(db.connect(ctx.root), ref)
    return None if vol is None else present.volume_document(ctx.root, vol)


_LOOKUP: dict[str, Callable[[Context, str], dict[str, Any] | None]] = {
    "container": container_document,
    "image": _image_document,
    "network": _network_document,
    "volume": _volume_document,
}


def _inspect_document(ctx: Context, c: store.Container) -> dict[str, Any]:
    """What docker shows: the image's config merged in, the joined networks' ids and gateways."""
    from ocirt.manager.containers import present
    from ocirt.manager.images import service as images
    from ocirt.manager.network import store as netstore

    rec = images.find(ctx.root, c.image_id)
    try:
        image = images.config(ctx.root, rec) if rec is not None else {}
    except ManagerError:  # the image's config blob is gone: the container's own record stands
        image = {}
    conn = db.connect(ctx.root)
    networks = {}
    for name in present.network_names(c):
        net = netstore.find_network(conn, name)
        if net is not None:
            networks[name] = {"Id": net.id, "Gateway": net.gateway, "Subnet": net.subnet}
    return present.inspect(ctx.root, c, image, networks)


def cmd_top(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    c = _get(ctx, args.container)
    if not c.state.live:
        raise ManagerError(f"container {c.name} is not running")
    print(ctx.run("ps", c.id, *(args.ps_args or ["-ef"])).stdout, end="")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from ocirt.manager import formats
    from ocirt.manager.containers import stats

    ctx = ctx_of(args)
    while True:
        wanted = [_get(ctx, ref) for ref in args.containers] or status.listing(ctx)
        running = [c for c in wanted if c.state.live]
        rows = stats.measure(ctx, running)
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        else:
            formats.print_list(args.format, [stats_context(r) for r in rows], STATS_HEADERS, STATS_TABLE)
        if args.no_stream:
            return 0


# docker's column names for ``stats --format 'table ...'``
STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def stats_context(r: dict[str, Any]) -> Record:
    """What ``stats --format`` templates see: docker's stats context, every field a string."""
    from ocirt.manager.containers import stats
    from ocirt.manager.gotemplate import Record

    h = stats.human
    return Record(
        "*formatter.statsContext",
        {
            "BlockIO": f"{h(r['BlockInput'])} / {h(r['BlockOutput'])}",
            "CPUPerc": f"{r['CPUPerc']:.2f}%",
            "Container": r["ID"],
            "ID": r["ID"],
            "MemPerc": f"{r['MemPerc']:.2f}%",
            "MemUsage": f"{h(r['MemUsage'])} / {h(r['MemLimit'])}",
            "Name": r["Name"],
            "NetIO": f"{h(r['NetInput'])} / {h(r['NetOutput'])}",
            "PIDs": str(r["PIDs"]),
        },
    )


def cmd_wait(args: argparse.Namespace) -> int:
    ctx = ctx_of(args)
    for ref in args.containers:
        c = _get(ctx, ref)
        if c.state.live:
            try:
                start.shim_client(ctx, c).wait()
            except OSError:
                pass
            exits.finish(ctx, c.id)
            c = store.find(db.connect(ctx.root), c.id) or c
        print(c.exit_code if c.exit_code is not None else -1)
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    from ocirt.manager.containers import present

    c = _get(ctx_of(args), args.container)
    for p in present.ports(c):
        key = f"{p['container_port']}/{p['protocol']}"
        if args.port is None or args.port in (key, str(p["container_port"])):
            print(f"{key} -> {p['host_ip'] or '0.0.0.0'}:{p['host_port']}")
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    from ocirt.manager.containers import copy

    ctx = ctx_of(args)
    src_ref, src = copy.split_ref(args.source)
    dst_ref, dst = copy.split_ref(args.dest)
    if (src_ref is None) == (dst_ref is None):
        raise ManagerError("cp: exactly one of SOURCE and DEST must be CONTAINER:PATH")
    if src_ref is not None:
        copy.copy_out(ctx.root, _get(ctx, src_ref), src, dst)
    else:
        assert dst_ref is not None
        copy.copy_in(src, ctx.root, _get(ctx, dst_ref), dst)
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from ocirt.manager.containers import names

    ctx = ctx_of(args)
    conn = db.connect(ctx.root)
    c = store.get(conn, args.container)
    with layout.locked(ctx.root, c.id):
        c = store.get(conn, c.id)
        old = c.name
        c.name = names.check(args.new_name)
        try:
            with db.transaction(conn):
                store.save(conn, c)
        except Exception as exc:  # sqlite3.IntegrityError
            raise ManagerError(f"rename: the name {args.new_name!r} is already in use") from exc
    store.event(ctx.root, c, "rename", {"oldName": "/" + old})
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    flags.resources(args, options.Resources())  # a bad flag is named before any lookup
    policy = options.restart_policy(args.restart) if args.restart is not None else None
    ctx = ctx_of(args)
    conn = db.connect(ctx.root)
    for ref in args.containers:
        c = store.get(conn, ref)
        with layout.locked(ctx.root, c.id):
            c = store.get(conn, c.id)
            c.options.resources = flags.resources(args, c.options.resources)
            if policy is not None:
                if c.options.auto_remove and policy[0] != "no":
                    raise ManagerError(f"--restart: {c.name} was made with --rm; they conflict")
                c.options.restart, c.options.restart_max = policy
            if c.state.live:
                body = specmod.resources(c.options.resources, start.block_devices(c.options.resources))
                ctx.run("update", "--resources", "-", c.id, input=json.dumps(body))
            with db.transaction(conn):
                store.save(conn, c)
        print(ref)
    return 0
