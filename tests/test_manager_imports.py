"""The manager's import budget (issue 2.4): ``ocirtctl run`` and the shim's exit command
(``python -m ocirt.manager.containers.cleanup``) run once per container, so neither may load
what only other commands need. The real processes run under ``-X importtime``, which names
every module each one loads; a deny list (rather than an allow list) keeps the test stable
while the container code itself grows."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.ctl import OCIRTCTL, Manager, checked, manager

# OpenSSL (secrets, hmac, random) for ids os.urandom gives; other commands' machinery
_NEVER = {
    "secrets",
    "uuid",
    "platform",
    "psutil",
    "decimal",
    "ocirt.manager.gotemplate",
    "ocirt.manager.formats",
    "ocirt.manager.containers.stats",
    "ocirt.manager.containers.copy",
    "ocirt.manager.containers.present",
    "ocirt.manager.commands.images",
    "ocirt.manager.commands.network",
    "ocirt.manager.commands.volumes",
    "ocirt.manager.commands.system",
    "ocirt.manager.api",
    "ocirt.manager.network.drivers.bridge",  # a bridge's netlink, nft and DNS server
    "ocirt.manager.network.dnsd",
    "ocirt.manager.network.nat",
}
# the exit command is not ocirtctl: no parser, no command groups, no start or create
_NOT_IN_CLEANUP = _NEVER | {
    "argparse",
    "subprocess",  # the runtime and the shim are called only when there is work
    "ocirt.manager.cli",
    "ocirt.manager.commands",
    "ocirt.manager.commands.containers",
    "ocirt.manager.containers.actions",
    "ocirt.manager.containers.start",
    "ocirt.manager.containers.create",
    "ocirt.manager.network",
    "ocirt.manager.images",
}


def loaded(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    names = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("package")
    }
    return done, names


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("imports"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def test_ocirtctl_run_loads_only_what_run_needs(ctl: Manager) -> None:
    done, names = loaded(
        [OCIRTCTL, "--root", ctl.root, "run", "--rm", "--network", "none", ctl.httpd, "true"]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ocirt.manager.containers.actions" in names  # the run really went through the CLI
    assert not names & _NEVER, sorted(names & _NEVER)


def test_exit_command_loads_no_cli_and_no_start(tmp_path: object) -> None:
    """An id the root does not hold: the process returns after its module-level imports,
    which are what every container's exit pays before any work."""
    root = str(tmp_path)
    done, names = loaded(["-m", "ocirt.manager.containers.cleanup", root, "ocirt", "f" * 64])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ocirt.manager.containers.exits" in names
    assert not names & _NOT_IN_CLEANUP, sorted(names & _NOT_IN_CLEANUP)
