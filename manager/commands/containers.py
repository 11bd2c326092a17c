"""``ocirtctl`` container commands: create, run, start, stop, kill, restart, pause,
unpause, rm, ps, logs, attach, exec, inspect, top, stats, wait, port, cp, rename, update and
``container prune``. The shim's exit command is ``ocirt.manager.containers.cleanup``.

Only the parser lives here; ``ocirt.manager.containers.actions`` is imported when one of
these commands runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from ocirt.manager.containers import flags

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

Action = Callable[[argparse.Namespace], int]


def _lazy(name: str) -> Action:
    def call(args: argparse.Namespace) -> int:
        from ocirt.manager.containers import actions

        result: int = getattr(actions, name)(args)
        return result

    return call


cmd_attach = _lazy("cmd_attach")
cmd_cp = _lazy("cmd_cp")
cmd_create = _lazy("cmd_create")
cmd_exec = _lazy("cmd_exec")
cmd_inspect = _lazy("cmd_inspect")
cmd_kill = _lazy("cmd_kill")
cmd_logs = _lazy("cmd_logs")
cmd_pause = _lazy("cmd_pause")
cmd_port = _lazy("cmd_port")
cmd_prune = _lazy("cmd_prune")
cmd_ps = _lazy("cmd_ps")
cmd_rename = _lazy("cmd_rename")
cmd_restart = _lazy("cmd_restart")
cmd_rm = _lazy("cmd_rm")
cmd_run = _lazy("cmd_run")
cmd_start = _lazy("cmd_start")
cmd_stats = _lazy("cmd_stats")
cmd_stop = _lazy("cmd_stop")
cmd_top = _lazy("cmd_top")
cmd_update = _lazy("cmd_update")
cmd_wait = _lazy("cmd_wait")


def _create_parser(sub: Sub, name: str, text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=text, add_help=False)
    p.add_argument("--help", action="help", help="show this help")
    flags.add_create_flags(p)
    p.add_argument("--tls-verify", default="true", help="verify the registry's TLS when pulling")
    return p


def _refs(sub: Sub, name: str, text: str, func: Action) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=text)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=func)
    return p


def _one(sub: Sub, name: str, text: str, func: Action) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=text)
    p.add_argument("container")
    p.set_defaults(func=func)
    return p


def register(sub: Sub) -> None:
    """Add this group's subcommands to ``sub``."""
    _commands(sub)
    _container_group(sub)


def _commands(sub: Sub) -> None:
    """Each top-level container command; ``ocirtctl container`` has them all again, as docker's."""
    _create_parser(sub, "create", "create a container").set_defaults(func=cmd_create)
    run = _create_parser(sub, "run", "create and start a container")
    run.add_argument("-d", "--detach", action="store_true", help="run in the background, print the id")
    run.set_defaults(func=cmd_run)
    p = _refs(sub, "start", "start containers", cmd_start)
    p.add_argument("-a", "--attach", action="store_true", help="attach to the output")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    for name, text in (("stop", "stop containers"), ("restart", "restart containers")):
        p = _refs(sub, name, text, cmd_stop if name == "stop" else cmd_restart)
        p.add_argument("-t", "--time", default=None, help="seconds before SIGKILL")
    _refs(sub, "kill", "signal containers", cmd_kill).add_argument("-s", "--signal", default="KILL")
    _refs(sub, "pause", "freeze containers", cmd_pause).set_defaults(resume=False)
    _refs(sub, "unpause", "thaw containers", cmd_pause).set_defaults(resume=True)
    p = _refs(sub, "rm", "remove containers", cmd_rm)
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    _ps_parser(sub, "ps")
    _logs_parser(sub)
    _one(sub, "attach", "attach to a running container", cmd_attach).add_argument(
        "--no-stdin", action="store_true"
    )
    _exec_parser(sub)
    p = _refs(sub, "inspect", "container details as JSON", cmd_inspect)
    p.add_argument("-f", "--format", default=None, help="Go template run over each document")
    p.add_argument("--type", choices=("container", "image", "network", "volume"), help="only this kind")
    p = _one(sub, "top", "processes of a container", cmd_top)
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("stats", help="resource usage of containers")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("--no-stream", action="store_true", help="print once")
    p.add_argument("--format", default="table", help="table, json or a Go template")
    p.set_defaults(func=cmd_stats)
    _refs(sub, "wait", "wait for containers to exit, print their codes", cmd_wait)
    _one(sub, "port", "published ports", cmd_port).add_argument("port", nargs="?")
    p = sub.add_parser("cp", help="copy files between a container and the host")
    p.add_argument("source")
    p.add_argument("dest")
    p.set_defaults(func=cmd_cp)
    _one(sub, "rename", "rename a container", cmd_rename).add_argument("new_name")
    p = _refs(sub, "update", "change resource limits and the restart policy", cmd_update)
    flags.add_resource_flags(p)
    p.add_argument("--restart", help="no, always, on-failure[:N], unless-stopped")
    for name in ("device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, action="append", default=[])


def _ps_parser(sub: Sub, name: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(name, help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="also stopped and created ones")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.add_argument("-f", "--filter", action="append", default=[], help="status=, name=, id=, label=")
    p.add_argument("--format", default="table", help="table, json or a Go template")
    p.add_argument("--no-trunc", action="store_true", help="whole ids and commands")
    p.add_argument("-n", "--last", default=None, help="the last N created containers, in any state")
    p.add_argument("-l", "--latest", action="store_true", help="the last created container, in any state")
    p.set_defaults(func=cmd_ps)


def _logs_parser(sub: Sub) -> None:
    p = _one(sub, "logs", "a container's output", cmd_logs)
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", default=None, help="last N lines (or all)")
    p.add_argument("--since", default=None, help="RFC 3339 time, unix seconds, or 10s/5m/2h")
    p.add_argument("-t", "--timestamps", action="store_true")


def _exec_parser(sub: Sub) -> None:
    p = _one(sub, "exec", "run a command in a running container", cmd_exec)
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[], help="read environment variables from a file")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _container_group(sub: Sub) -> None:
    group: argparse.ArgumentParser = sub.add_parser("container", help="container management")
    inner = group.add_subparsers(dest="container_command", metavar="COMMAND")
    _commands(inner)
    inner.choices["inspect"].set_defaults(type="container")  # docker container inspect: containers only
    p = inner.add_parser("prune", help="remove every stopped container")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (never asks anyway)")
    p.set_defaults(func=cmd_prune)
    _ps_parser(inner, "ls")
