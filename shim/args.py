"""``ocirt-shim``'s command line, parsed by a table (``argparse`` costs memory in every shim)."""

from __future__ import annotations

from ocirt.foundation.units import parse_size
from ocirt.shim.logs import DEFAULT_DRIVER, DRIVERS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

PROG = "ocirt-shim"


class UsageError(Exception):
    pass


class Options:
    __slots__ = (
        "bundle",
        "delete_on_exit",
        "exit_command",
        "exit_command_args",
        "health_command",
        "healthcheck",
        "id",
        "log_driver",
        "log_info",
        "log_max_file",
        "log_max_size",
        "log_opts",
        "log_path",
        "no_start",
        "runtime",
        "runtime_root",
        "state_dir",
        "stdin",
        "sync_fd",
        "tty",
    )

    def __init__(self) -> None:
        self.id = ""
        self.bundle = ""
        self.runtime = "ocirt"
        self.runtime_root: str | None = None
        self.state_dir = ""
        self.log_path: str | None = None
        self.log_driver = DEFAULT_DRIVER
        self.log_max_size = 0
        self.log_max_file = 1
        self.log_opts: dict[str, str] = {}
        self.log_info: dict[str, str] = {}
        self.healthcheck: dict[str, Any] | None = None
        self.health_command: list[str] = []
        self.tty = False
        self.stdin = False
        self.exit_command: str | None = None
        self.exit_command_args: list[str] = []
        self.no_start = False
        self.delete_on_exit = False
        self.sync_fd = -1


_BOOLS = {"tty", "stdin", "no-start", "delete-on-exit"}
_VALUES = {
    "id",
    "bundle",
    "runtime",
    "runtime-root",
    "state-dir",
    "log-path",
    "log-driver",
    "log-max-size",
    "log-max-file",
    "log-opt",
    "log-info",
    "healthcheck",
    "health-command-arg",
    "exit-command",
    "exit-command-arg",
    "sync-fd",
}
_REQUIRED = ("id", "bundle", "state-dir")


def parse(argv: Sequence[str]) -> Options:
    opts = Options()
    seen: set[str] = set()
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("--"):
            raise UsageError(f"unexpected argument {word!r}")
        name, eq, value = word[2:].partition("=")
        if name in _BOOLS and not eq:
            setattr(opts, name.replace("-", "_"), True)
        elif name in _VALUES:
            if not eq:
                i += 1
                if i == len(argv):
                    raise UsageError(f"--{name} needs a value")
                value = argv[i]
            _set(opts, name, value)
        else:
            raise UsageError(f"unknown flag --{name}")
        seen.add(name)
        i += 1
    for name in _REQUIRED:
        if name not in seen:
            raise UsageError(f"--{name} is required")
    driver = DRIVERS[opts.log_driver]
    if opts.log_path is None and driver.record is not None:
        raise UsageError(f"--log-path is required with --log-driver {opts.log_driver}")
    for key in opts.log_opts:
        if key not in driver.options:
            raise UsageError(f"--log-opt {key}: not an option of the {driver.name} log driver")
    return opts


def _set(opts: Options, name: str, value: str) -> None:
    if name == "log-driver" and value not in DRIVERS:
        raise UsageError(f"--log-driver: {value!r} is not one of {', '.join(DRIVERS)}")
    if name in ("id", "bundle", "runtime", "state-dir") and not value:
        raise UsageError(f"--{name} must not be empty")
    if name == "exit-command-arg":
        opts.exit_command_args.append(value)
    elif name == "health-command-arg":
        opts.health_command.append(value)
    elif name == "healthcheck":
        opts.healthcheck = _healthcheck(value)
    elif name in ("log-opt", "log-info"):
        key, eq, text = value.partition("=")
        if not eq or not key:
            raise UsageError(f"--{name} {value!r}: expected KEY=VALUE")
        (opts.log_opts if name == "log-opt" else opts.log_info)[key] = text
    elif name == "log-max-size":
        opts.log_max_size = _size(name, value)
    elif name in ("log-max-file", "sync-fd"):
        opts.__setattr__(name.replace("-", "_"), _int(name, value, 1 if name == "log-max-file" else 0))
    else:
        setattr(opts, name.replace("-", "_"), value)


def _healthcheck(text: str) -> dict[str, Any]:
    """docker's HealthConfig as JSON, every field present (the manager fills the defaults)."""
    from ocirt.foundation import fastjson

    try:
        doc = fastjson.loads(text)
    except ValueError as exc:
        raise UsageError(f"--healthcheck: invalid JSON: {exc}") from None
    test = doc.get("Test") if isinstance(doc, dict) else None
    if not (isinstance(test, list) and len(test) >= 2 and test[0] in ("CMD", "CMD-SHELL")):
        raise UsageError('--healthcheck: Test must be ["CMD", ...] or ["CMD-SHELL", command]')
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        if not isinstance(doc.get(key), int) or doc[key] < 0:
            raise UsageError(f"--healthcheck: {key} must be a number of at least 0")
    return dict(doc)


def _int(name: str, value: str, low: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--{name}: {value!r} is not a number") from None
    if n < low:
        raise UsageError(f"--{name}: must be at least {low}")
    return n


def _size(name: str, value: str) -> int:
    """Docker's sizes (foundation/units.py): ``1024``, ``10k``, ``5m``, ``1g``."""
    try:
        return parse_size(value)
    except ValueError:
        raise UsageError(f"--{name}: {value!r} is not a size such as 1048576, 512k or 10m") from None
