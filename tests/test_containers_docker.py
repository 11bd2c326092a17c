"""docker's command line in real containers: the commands and flags docker scripts use,
each checked by its effect inside the container or on the host (the mechanical comparison
of the flag lists is tests/test_docker_cli.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.ctl import Manager, checked, manager


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    with manager(str(tmp_path_factory.mktemp("docker"))) as m:
        yield m


@pytest.fixture
def ctl(mgr: Manager) -> Iterator[Manager]:
    with checked(mgr) as m:
        yield m


def test_container_group_has_every_container_command(ctl: Manager) -> None:
    """``docker container run|exec|logs|inspect|rename|rm ...`` are the top-level commands."""
    ctl("container", "run", "-d", "--name", "grouped", ctl.httpd)
    assert ctl("container", "exec", "grouped", "cat", "/var/www/index.html").stdout == "hello from ocirt\n"
    ctl("container", "rename", "grouped", "regrouped")
    assert (
        ctl("container", "inspect", "-f", "{{.Name}}", "regrouped").stdout.strip().lstrip("/") == "regrouped"
    )
    ctl("container", "stop", "-t", "0", "regrouped")
    assert ctl("container", "ls", "-a", "-q", "--filter", "name=regrouped").stdout.strip()
    ctl("container", "rm", "regrouped")
    assert ctl("container", "ps", "-a", "-q", "--filter", "name=regrouped").stdout == ""
