"""What ``create`` hands from the parent to the processes it forks.

The children are forks, not re-executions: they inherit this object already parsed, so
nothing is serialised and no interpreter starts twice (runc and crun must re-exec).
"""

from __future__ import annotations

from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from typing import Any

    from ocirt.runtime.api import CreateOptions
    from ocirt.runtime.capabilities import CapabilitySets
    from ocirt.runtime.namespaces import Plan
    from ocirt.runtime.seccomp import Filter
    from ocirt.specs.config import Config, Hook


class Prepared:
    """What create works out from the bundle before anything of the container exists."""

    __slots__ = ("bundle", "caps", "config", "plan", "seccomp")

    def __init__(
        self, config: Config, bundle: str, plan: Plan, caps: CapabilitySets | None, seccomp: Filter | None
    ) -> None:
        self.config = config
        self.bundle = bundle
        self.plan = plan
        self.caps = caps
        self.seccomp = seccomp

    def close(self) -> None:
        """When create stops before a child could take them over."""
        self.plan.close()
        if self.seccomp is not None:
            self.seccomp.close()


class Launch:
    __slots__ = (
        "bind_fds",
        "bind_sources",
        "bundle",
        "caps",
        "cgroup_paths",
        "config",
        "console",
        "hook_state",
        "hooks",
        "idmap_fds",
        "no_new_keyring",
        "no_pivot",
        "plan",
        "preserve_fds",
        "seccomp",
        "state_fd",
    )

    def __init__(
        self,
        prepared: Prepared,
        options: CreateOptions,
        cgroup_paths: dict[str, str],
        state_fd: int,
        hook_state: dict[str, Any],
    ) -> None:
        self.config = prepared.config
        self.bundle = prepared.bundle
        self.plan = prepared.plan
        self.caps = prepared.caps
        self.hooks: dict[str, list[Hook]] = prepared.config.hooks
        # linux.seccomp, built by create; init loads it (see runtime/seccomp.py for when)
        self.seccomp = prepared.seccomp
        self.no_pivot = options.no_pivot
        self.no_new_keyring = options.no_new_keyring
        self.preserve_fds = options.preserve_fds
        self.cgroup_paths = cgroup_paths
        self.state_fd = state_fd
        self.hook_state = hook_state
        # connected console socket (process.terminal): init sends the pty master over it
        self.console: socket | None = None
        # (mounts index, host path) the parent opens in the container's mount namespace
        # (mounts.bind_sources), and the fds the intermediate receives for init
        self.bind_sources: list[tuple[int, str]] = []
        self.bind_fds: dict[int, int] = {}
        # detached idmapped trees the parent made before forking (idmapped.idmapped_trees)
        self.idmap_fds: dict[int, int] = {}

    def needs_create_hooks(self) -> bool:
        """Init stops before pivot_root only when a hook has to run there."""
        return any(self.hooks.get(k) for k in ("prestart", "createRuntime", "createContainer"))


def describe(exc: BaseException) -> str:
    """One line for any failure in a child; only our own error types are expected here."""
    if isinstance(exc, OcirtError):
        return str(exc)
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        return f"{text}: {exc.filename}" if exc.filename and str(exc.filename) not in text else text
    return f"internal error: {type(exc).__name__}: {exc}"
