"""``ocirtctl``: the docker-like command of the manager.

Daemonless like podman: each invocation is a short process that reads and writes the
SQLite metadata under ``--root`` and talks to per-container shims. Command groups live in
``ocirt.manager.commands.<group>``; each adds its subcommands through ``register`` so this
module stays a thin dispatcher. A call imports only its command's group (``COMMANDS``): all
five cost ~0.2 s of imports, more than half of an ``ocirtctl run``; help, no command and an
unknown one build the whole parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, NoReturn

from ocirt.manager.db import DEFAULT_ROOT
from ocirt.manager.errors import ManagerError

# modules under ocirt.manager.commands, each with register(subparsers)
GROUPS = ("images", "containers", "network", "volumes", "system")

# which group registers each top-level command: a call loads only the group it needs
# (tests/test_images.py checks this table against what the groups register)
_BY_GROUP = {
    "images": "history image images import load login logout pull push rmi save tag",
    "containers": "attach container cp create exec inspect kill logs pause port ps rename restart rm run "
    "start stats stop top unpause update wait",
    "network": "network",
    "volumes": "volume",
    "system": "events system info version",
}
COMMANDS = {name: group for group, names in _BY_GROUP.items() for name in names.split()}
_VALUED = ("--root", "--runtime")  # the global options that take a value
INTERNAL_ERROR = 125  # docker's and podman's exit code for a failure of the tool itself
# what Go's strconv.ParseBool reads, so ``--rm=false`` and ``-t=1`` mean what docker makes them mean
_TRUE = ("true", "True", "TRUE", "t", "T", "1")
_FALSE = ("false", "False", "FALSE", "f", "F", "0")


class Parser(argparse.ArgumentParser):
    """argparse as docker's CLI parses: no prefix matching (``--pid`` must never become
    ``--pids-limit``), a boolean flag also takes ``=true``/``=false``, and a bad command line
    exits 125 on one line. Sub-commands inherit the class through ``add_subparsers``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        self.flags: list[str] = []  # every option string given, for the comparison with docker's
        self.commands: dict[str, argparse.ArgumentParser] = {}  # sub-commands and their aliases
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        action = super().add_subparsers(**kwargs)
        self.commands = action.choices  # the very dict add_parser fills
        return action

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.flags += action.option_strings
        if action.nargs == 0 and isinstance(action.const, bool) and action.option_strings:
            self._explicit(action, action.const, _TRUE)
            self._explicit(action, not action.const, _FALSE)
        return action

    def _explicit(self, action: argparse.Action, value: bool, words: tuple[str, ...]) -> None:
        """Hidden ``--flag=WORD`` spellings: argparse looks an option up whole before it
        splits at ``=``, so these match exactly and keep the order of the command line."""
        names = [f"{name}={word}" for name in action.option_strings for word in words]
        hidden = argparse.SUPPRESS
        super().add_argument(*names, dest=action.dest, action="store_const", const=value, help=hidden)

    def error(self, message: str) -> NoReturn:
        """docker's wording and status: 125 for a flag it cannot read, 1 for an unknown
        command or a missing argument (argparse says 2 for all and dumps the usage)."""
        status, unknown, choice = (
            INTERNAL_ERROR,
            "unrecognized arguments: ",
            "argument COMMAND: invalid choice: ",
        )
        if message.startswith(unknown) and message[len(unknown) :].startswith("-"):
            message = f"unknown flag: {message[len(unknown) :]}"
        elif message.startswith(choice):
            status, message = 1, f"{message[len(choice) :].split(' (')[0]} is not an ocirtctl command"
        elif message.startswith("the following arguments are required"):
            status = 1
        self.exit(status, f"ocirtctl: {message} (see '{self.prog} --help')\n")


def build_parser(groups: tuple[str, ...] = GROUPS) -> Parser:
    parser = Parser(prog="ocirtctl", description="Manage OCI images and containers.")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="manager state directory (%(default)s)")
    parser.add_argument("--runtime", default=None, help="runc-compatible runtime binary (default: ocirt)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in groups:
        module = importlib.import_module(f"ocirt.manager.commands.{group}")
        module.register(sub)
    return parser


def groups_for(argv: list[str]) -> tuple[str, ...]:
    """The one group the command in ``argv`` belongs to; every group for help, no command,
    an unknown command or an unknown global option (so argparse says what is wrong)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUED:
            i += 2
        elif arg == "--debug" or arg.partition("=")[0] in _VALUED:
            i += 1
        elif arg in COMMANDS:
            return (COMMANDS[arg],)
        else:
            break
    return GROUPS


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(groups_for(argv))
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        build_parser().print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        return _report(exc)


def _report(exc: Exception) -> int:
    """The one error boundary: a user's mistake is one line; anything else is a bug, said
    so on one line (the traceback is for ``--debug``)."""
    if isinstance(exc, ManagerError):
        print(f"ocirtctl: {exc}", file=sys.stderr)
        return exc.exit_code
    text = " ".join(str(exc).split()) or "no message"
    print(
        f"ocirtctl: internal error: {type(exc).__name__}: {text}"
        " (please report this bug; run with --debug for the traceback)",
        file=sys.stderr,
    )
    return INTERNAL_ERROR


def entry() -> None:
    sys.exit(main())
