"""``ocirtctl system`` commands: ``system gc`` deletes blobs and unpacked layers no image
references (``rmi`` and ``image prune`` run it too); ``system reset`` removes everything the
root holds and made on the host (containers, images, volumes, networks, the default bridge
and the nft table); ``system service`` serves the Docker Engine API over the same root
(``ocirt.manager.api``, imported only then)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from ocirt.manager.errors import ManagerError
from ocirt.manager.gotemplate import Record
from ocirt.manager.images import service

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def register(sub: Sub) -> None:
    """Add this group's subcommands to ``sub``."""
    system = sub.add_parser("system", help="manage the manager's storage")
    group = system.add_subparsers(dest="system_command", metavar="COMMAND")
    gc = group.add_parser("gc", help="delete unreferenced blobs and snapshots")
    gc.set_defaults(func=cmd_gc)
    reset = group.add_parser("reset", help="remove every container, image, volume and network of the root")
    reset.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(func=cmd_reset)
    api = group.add_parser("service", help="serve the Docker Engine API (docker, docker-py, compose)")
    api.add_argument(
        "-t", "--time", default="5", help="seconds idle before exiting; 0 serves forever (%(default)s)"
    )
    api.add_argument("uris", nargs="*", metavar="URI", help="unix:///PATH or tcp://HOST:PORT")
    api.set_defaults(func=cmd_service)
    for parser in (sub.add_parser("events", help="show events as they happen"), group.add_parser("events")):
        _events_flags(parser)
    for parser in (sub.add_parser("info", help="system-wide information"), group.add_parser("info")):
        parser.add_argument("-f", "--format", help="a Go template over docker's info document")
        parser.set_defaults(func=cmd_info)
    prune = group.add_parser("prune", help="remove stopped containers, unused networks, dangling images")
    prune.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.add_argument("--volumes", action="store_true", help="unused volumes too")
    prune.set_defaults(func=cmd_prune)
    version = sub.add_parser("version", help="client and engine versions")
    version.add_argument("-f", "--format", help="a Go template over {Client, Server}")
    version.set_defaults(func=cmd_version)


def _events_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="show events since this time (RFC 3339, unix time, or 10m ago)")
    parser.add_argument("--until", help="stream events until this time")
    parser.add_argument("-f", "--filter", action="append", default=[], help="key=value (type, event, ...)")
    parser.add_argument("--format", help="json, or a Go template over each event")
    parser.set_defaults(func=cmd_events)


def cmd_gc(args: argparse.Namespace) -> int:
    blobs, snaps = service.gc(args.root)
    print(f"Deleted {blobs} blobs and {snaps} snapshots")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from ocirt.manager import events, formats
    from ocirt.manager.timeargs import timestamp_ns

    now = time.time_ns()
    since = timestamp_ns(args.since, "--since", now) if args.since else None
    until = timestamp_ns(args.until, "--until", now) if args.until else None
    filters = events.parse_filters(args.filter)
    render = None
    if args.format:
        render = formats.row_renderer("{{json .}}" if args.format == "json" else args.format)
    try:
        for ev in events.stream(args.root, since, until, filters):
            print(events.text_line(ev) if render is None else render(ev.message()), flush=True)
    except BrokenPipeError:  # the reader went away (``events | head -1``): done, as docker
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """docker's order: containers first, so their networks, images and volumes become unused."""
    what = "stopped containers, unused networks, " + ("unused images" if args.all else "dangling images")
    _confirm(args, "system prune", what + (", unused volumes" if args.volumes else ""))
    from ocirt.manager.containers import remove
    from ocirt.manager.containers.runtime import Context
    from ocirt.manager.network import service as networks

    _report("Deleted Containers:", remove.prune(Context.make(args.root, args.runtime)))
    _report("Deleted Networks:", networks.prune_networks(args.root))
    if args.volumes:
        from ocirt.manager.volumes import service as volumes

        _report("Deleted Volumes:", volumes.prune(args.root))
    _report("Deleted Images:", [f"deleted: {i}" for i in service.prune(args.root, all_images=args.all)])
    return 0


def _report(title: str, names: list[str]) -> None:
    if names:
        print("\n".join([title, *names, ""]))


def _confirm(args: argparse.Namespace, command: str, what: str) -> None:
    """docker asks first; without a terminal to ask on, ``--force`` is the answer."""
    if args.force:
        return
    if not sys.stdin.isatty():
        raise ManagerError(f"{command}: removes {what}; confirm with --force")
    answer = input(f"WARNING! This will remove all {what}.\nAre you sure you want to continue? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ManagerError(f"{command}: not confirmed", 1)


def cmd_info(args: argparse.Namespace) -> int:
    from ocirt.manager import formats
    from ocirt.manager.api.endpoints import info_document
    from ocirt.manager.containers.runtime import Context

    doc = info_document(Context.make(args.root, args.runtime))
    if args.format:
        formats.print_inspect(args.format, [doc])
        return 0
    lines = [
        "Server:",
        f" Containers: {doc['Containers']}",
        f"  Running: {doc['ContainersRunning']}",
        f"  Paused: {doc['ContainersPaused']}",
        f"  Stopped: {doc['ContainersStopped']}",
        f" Images: {doc['Images']}",
        f" Server Version: {doc['ServerVersion']}",
        f" Storage Driver: {doc['Driver']}",
        f" Logging Driver: {doc['LoggingDriver']}",
        f" Cgroup Driver: {doc['CgroupDriver']}",
        f" Cgroup Version: {doc['CgroupVersion']}",
        f" Default Runtime: {doc['DefaultRuntime']}",
        f" Kernel Version: {doc['KernelVersion']}",
        f" Operating System: {doc['OperatingSystem']}",
        f" OSType: {doc['OSType']}",
        f" Architecture: {doc['Architecture']}",
        f" CPUs: {doc['NCPU']}",
        f" Total Memory: {doc['MemTotal'] / (1 << 30):.3g}GiB",
        f" Name: {doc['Name']}",
        f" Docker Root Dir: {doc['DockerRootDir']}",
        " Insecure Registries:",
        *(f"  {cidr}" for cidr in doc["RegistryConfig"]["InsecureRegistryCIDRs"]),
    ]
    print("\n".join(lines))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    """docker's two parts: the client (this process) and the engine (the same code: the
    Engine API's ``/version`` document, as ``system service`` serves it)."""
    from ocirt.manager import formats
    from ocirt.manager.api.endpoints import version_document
    from ocirt.manager.api.server import API_VERSION

    server = version_document()
    client = {
        "Platform": {"Name": ""},
        "Version": server["Version"],
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "GoVersion": server["GoVersion"],
        "GitCommit": "",
        "BuiltTime": "",
        "Os": server["Os"],
        "Arch": server["Arch"],
        "Context": "default",
        "Experimental": True,
    }
    if args.format:
        formats.print_inspect(args.format, [{"Client": _go_names(client), "Server": _go_names(server)}])
        return 0
    rows = [
        "Client:",
        f" Version:           {client['Version']}",
        f" API version:       {client['ApiVersion']}",
        f" Go version:        {client['GoVersion']}",
        f" OS/Arch:           {client['Os']}/{client['Arch']}",
        "",
        f"Server: {server['Platform']['Name']}",
        " Engine:",
        f"  Version:          {server['Version']}",
        f"  API version:      {server['ApiVersion']} (minimum version {server['MinAPIVersion']})",
        f"  Go version:       {server['GoVersion']}",
        f"  OS/Arch:          {server['Os']}/{server['Arch']}",
        f"  Experimental:     {str(server['Experimental']).lower()}",
    ]
    print("\n".join(rows))
    return 0


def _go_names(doc: dict[str, Any]) -> Record:
    """Templates see Go's field names (``.Server.APIVersion``), ``json`` the wire's (``ApiVersion``)."""
    fields = {("APIVersion" if k == "ApiVersion" else k): v for k, v in doc.items()}
    return Record("types.Version", fields, {"APIVersion": "ApiVersion"})


def cmd_service(args: argparse.Namespace) -> int:
    from ocirt.manager.containers import units

    idle = units.integer(args.time, "--time", 0, units.SECONDS_MAX)
    from ocirt.manager.api.endpoints import ROUTES
    from ocirt.manager.api.server import serve
    from ocirt.manager.containers.runtime import Context

    return serve(Context.make(args.root, args.runtime), ROUTES, args.uris, idle)


def cmd_reset(args: argparse.Namespace) -> int:
    if not args.force:
        if not sys.stdin.isatty():
            raise ManagerError("system reset: removes everything under the root; confirm with --force")
        answer = input(
            f"This removes every container, image, volume and network of {args.root}. Continue? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    from ocirt.manager.reset import reset

    failed = reset(args.root, args.runtime)
    for line in failed:
        print(f"ocirtctl: system reset: {line}", file=sys.stderr)
    return 125 if failed else 0
