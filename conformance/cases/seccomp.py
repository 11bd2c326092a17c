"""config-linux.md Seccomp: actions, errnoRet, argument conditions, and profiles that cannot
be loaded. Each profile allows everything but the syscalls it is about."""

from __future__ import annotations

from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.probe import probe, refused

CL = "config-linux.md"
MKDIR = ["mkdir", "mkdirat"]
TRY_MKDIR = "mkdir /tmp/d 2>&1 | sed 's/.*: //'; [ -d /tmp/d ] && echo made || echo absent"


def _profile(*rules: dict[str, Any], nnp: bool = True, **top: Any) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **top}

    return edit


probe(
    "seccomp.errno",
    CL,
    "Seccomp",
    TRY_MKDIR,
    "Operation not permitted\nabsent",
    _profile({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}),
    doc="SCMP_ACT_ERRNO without errnoRet fails the syscall with EPERM.",
)
probe(
    "seccomp.errno-ret",
    CL,
    "Seccomp",
    TRY_MKDIR,
    "Permission denied\nabsent",
    _profile({"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": 13}),
    version="1.1.0",
    doc="errnoRet (1.1.0) is the errno the filtered syscall returns (13: EACCES).",
)
probe(
    "seccomp.kill",
    CL,
    "Seccomp",
    "mkdir /tmp/d; echo $?",
    "159",
    _profile({"names": MKDIR, "action": "SCMP_ACT_KILL"}),
    doc="SCMP_ACT_KILL kills the calling thread with SIGSYS (the shell reports 128+31).",
)
probe(
    "seccomp.args",
    CL,
    "Seccomp",
    "kill -0 $$ 2>/dev/null || echo denied; kill -CONT $$ && echo allowed",
    "denied\nallowed",
    _profile(
        {
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}],
        }
    ),
    doc="Argument conditions: only kill(pid, 0) is filtered; other signals pass.",
)
probe(
    "seccomp.allow-log",
    CL,
    "Seccomp",
    TRY_MKDIR,
    "made",
    _profile({"names": MKDIR, "action": "SCMP_ACT_LOG"}),
    doc="SCMP_ACT_LOG allows the syscall (and logs it).",
)
probe(
    "seccomp.without-nnp",
    CL,
    "Seccomp",
    TRY_MKDIR,
    "Operation not permitted\nabsent",
    _profile({"names": MKDIR, "action": "SCMP_ACT_ERRNO"}, nnp=False),
    doc="The profile applies without noNewPrivileges too (loaded while the process may still do so).",
)
probe(
    "seccomp.architectures",
    CL,
    "Seccomp",
    TRY_MKDIR,
    "Operation not permitted\nabsent",
    _profile(
        {"names": MKDIR, "action": "SCMP_ACT_ERRNO"},
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    ),
    doc="architectures lists the ABIs the profile covers; the native one is filtered as asked.",
)
refused(
    "seccomp.bad-action",
    CL,
    "Seccomp",
    _profile({"names": MKDIR, "action": "SCMP_ACT_NO_SUCH_ACTION"}),
    doc="An action that is not one of the spec's cannot be applied: an error, no container.",
)
refused(
    "seccomp.bad-default",
    CL,
    "Seccomp",
    lambda cfg, ctx: cfg["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_BOGUS"}),
    doc="An unknown defaultAction: an error, no container.",
)
