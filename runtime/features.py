"""The runtime-spec features document (features.md, features-linux.md) of this ocirt.

Built from the tables the runtime itself uses, so it cannot claim more than ``create``
accepts: a config section that ``create`` still refuses (``NOT_YET``) is reported
as absent or disabled, and the lists come from the option, namespace, capability and
seccomp tables. ``build`` reads from the host only whether AppArmor and SELinux are
enabled; ``kernel_seccomp_flags`` asks the kernel, for the command to add ``supportedFlags``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION_MIN = "1.0.0"
# Sections whose handling arrives with later work: create refuses them, never silently ignores.
NOT_YET: tuple[tuple[str, str | None], ...] = (("linux", "netDevices"),)
# Handled inline by mountopts.parse_options rather than through one of its tables.
_OTHER_OPTIONS = ("defaults", "tmpcopyup", "idmap", "ridmap")


def build() -> dict[str, Any]:
    from ocirt.runtime import capabilities, lsm, mempolicy, mountopts, namespaces
    from ocirt.specs.config import SPEC_VERSION

    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": SPEC_VERSION,
        "hooks": hooks(),
        "mountOptions": sorted(
            {*mountopts.FLAGS, *mountopts.PROPAGATION, *mountopts.RECURSIVE, *_OTHER_OPTIONS}
        ),
        "linux": {
            "namespaces": sorted(namespaces.CLONE_FLAGS),
            "capabilities": list(capabilities.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "seccomp": seccomp_section(),
            # labels are applied where the host has the LSM, refused otherwise (runtime/lsm.py)
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": {"enabled": False},  # refused, naming resctrl when it is missing
            # bind mounts only: idmapped.idmapped_trees
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": supported("linux", "netDevices")},
            "memoryPolicy": {"modes": sorted(mempolicy.MODES), "flags": sorted(mempolicy.FLAGS)},
        },
        "annotations": {},
    }


def supported(section: str, key: str) -> bool:
    """False for a config field ``create`` refuses, alone or with its whole section."""
    refused: set[tuple[str, str | None]] = set(NOT_YET)
    return (section, key) not in refused and (section, None) not in refused


def seccomp_section() -> dict[str, Any]:
    """The names ``linux.seccomp`` accepts; ``archs`` is left out, as libseccomp resolves them."""
    if not supported("linux", "seccomp"):
        return {"enabled": False}
    from ocirt.runtime import seccomp

    return {
        "enabled": True,
        "actions": sorted(seccomp.ACTIONS),
        "operators": sorted(seccomp.OPERATORS),
        "knownFlags": sorted(seccomp.FLAGS),
    }


def kernel_seccomp_flags() -> list[str]:
    """The known flags this kernel accepts (a probe that loads no filter): ``supportedFlags``."""
    from ocirt.runtime import seccomp, syscalls

    found = []
    for name, flag in sorted(seccomp.FLAGS.items()):
        if flag == syscalls.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
            flag |= syscalls.SECCOMP_FILTER_FLAG_NEW_LISTENER  # meaningless without a listener
        if syscalls.seccomp_flags_known(flag):
            found.append(name)
    return found


def hooks() -> list[str]:
    from ocirt.runtime.hooks import KINDS

    return [kind for kind in KINDS if supported("hooks", kind)]
