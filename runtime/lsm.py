"""AppArmor and SELinux labels, and Intel RDT: honoured where the host has them, refused with
the field's name where it does not, never silently dropped (a label that is asked for and
not applied would leave the container less confined than its owner believes).

The labels are exec labels: written to ``/proc/thread-self/attr`` before the user switch,
they take effect at the program's ``execve``, not on the runtime code still to run.
"""

from __future__ import annotations

import os

from ocirt.runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

APPARMOR_FS = "/sys/kernel/security/apparmor"
SELINUX_FS = "/sys/fs/selinux"
RESCTRL_FS = "/sys/fs/resctrl"


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            enabled = f.read().strip() == "Y"
    except OSError:
        return False
    return enabled and os.path.isdir(APPARMOR_FS)


def selinux_enabled() -> bool:
    return os.path.exists(os.path.join(SELINUX_FS, "enforce"))


def resctrl_mounted() -> bool:
    return os.path.exists(os.path.join(RESCTRL_FS, "schemata"))


def check_process(process: dict[str, Any], path: str = "process") -> None:
    if process.get("apparmorProfile") and not apparmor_enabled():
        raise SpecError(f"{path}.apparmorProfile", "AppArmor is not enabled on this host")
    if process.get("selinuxLabel") and not selinux_enabled():
        raise SpecError(f"{path}.selinuxLabel", "SELinux is not enabled on this host")


def check_linux(linux: dict[str, Any]) -> None:
    if linux.get("mountLabel"):
        if not selinux_enabled():
            raise SpecError("linux.mountLabel", "SELinux is not enabled on this host")
        raise SpecError("linux.mountLabel", "SELinux mount labels are not supported by this version of ocirt")
    if linux.get("intelRdt") is not None:
        if not resctrl_mounted():
            raise SpecError("linux.intelRdt", f"Intel RDT is unavailable: no resctrl mounted at {RESCTRL_FS}")
        raise SpecError("linux.intelRdt", "not supported by this version of ocirt")


def apply_labels(process: dict[str, Any], path: str = "process") -> None:
    """Set the exec labels ``check_process`` allowed; the host's /proc may be out of sight,
    so the container's own (at /proc) is used, as runc does."""
    profile = process.get("apparmorProfile")
    if profile:
        _write_attr("apparmor/exec", f"exec {profile}", f"{path}.apparmorProfile")
    label = process.get("selinuxLabel")
    if label:
        _write_attr("exec", label, f"{path}.selinuxLabel")


def _write_attr(name: str, value: str, field: str) -> None:
    try:
        with open(f"/proc/thread-self/attr/{name}", "w") as f:
            f.write(value)
    except OSError as exc:
        raise SpecError(field, f"cannot apply {value!r}: {exc.strerror}") from None
