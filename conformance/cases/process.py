"""config.md Process and POSIX-platform User: args, env, cwd, ids, umask, rlimits,
capabilities, noNewPrivileges and oomScoreAdj, each read back from inside the container."""

from __future__ import annotations

from typing import Any

from ocirt.conformance.harness import Context
from ocirt.conformance.model import SHOULD
from ocirt.conformance.probe import probe, refused, status_field

CFG = "config.md"
CAP_BITS = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10}


def _mask(*caps: str) -> str:
    return f"{sum(1 << CAP_BITS[c] for c in caps):016x}"


def _proc(**fields: Any) -> Any:
    def edit(cfg: dict[str, Any], ctx: Context) -> None:
        cfg["process"].update(fields)

    return edit


def _args(cfg: dict[str, Any], ctx: Context) -> None:
    cfg["process"]["args"] = ["sh", "-c", 'printf "%s|" "$0" "$@"', "zero", "a b", "", "*"]


probe(
    "process.args",
    CFG,
    "Process",
    "",
    "zero|a b||*|",
    _args,
    doc="args are passed as execv's argv: no splitting, no globbing, empty strings kept.",
)
probe(
    "process.env",
    CFG,
    "Process",
    'echo "$FOO|$EMPTY|$PATH"',
    "bar baz||/bin:/sbin",
    _proc(env=["PATH=/bin:/sbin", "FOO=bar baz", "EMPTY="]),
    doc="env has environ's semantics: each NAME=value reaches the process as given.",
)
probe(
    "process.cwd",
    CFG,
    "Process",
    "pwd",
    "/tmp",
    _proc(cwd="/tmp"),
    doc="cwd is the working directory set for the executable.",
)
probe(
    "process.path-lookup",
    CFG,
    "Process",
    "",
    "found",
    _proc(args=["echo", "found"]),
    doc="args[0] without a slash is found in the container's PATH (execvp semantics).",
)
probe(
    "process.user.uid-gid",
    CFG,
    "POSIX-platform User",
    "echo $(id -u) $(id -g)",
    "1000 1001",
    _proc(user={"uid": 1000, "gid": 1001}),
    doc="uid and gid: the user and group IDs in the container namespace.",
)
probe(
    "process.user.additional-gids",
    CFG,
    "POSIX-platform User",
    status_field("Groups"),
    "10 20",
    _proc(user={"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}),
    doc="additionalGids: the supplementary groups of the process (exactly those).",
)
probe(
    "process.user.umask",
    CFG,
    "POSIX-platform User",
    "umask",
    "0027",
    _proc(user={"uid": 0, "gid": 0, "umask": 0o27}),
    doc="umask: the user's file mode creation mask.",
)
probe(
    "process.rlimits",
    CFG,
    "POSIX process",
    "grep -E 'core file|open files' /proc/$$/limits | awk '{print $(NF-2), $(NF-1)}'",
    "4096 8192\n1000 2000",
    _proc(
        rlimits=[
            {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        ]
    ),
    doc="rlimits: for each entry, getrlimit on type in the container returns the configured soft "
    "and hard values.",
)
refused(
    "process.rlimits.unknown",
    CFG,
    "POSIX process",
    _proc(rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
    doc="The runtime MUST generate an error for any rlimit type that cannot be mapped to a "
    "relevant kernel interface.",
)

_CAPS = {
    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
    "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"],
    "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"],
    "inheritable": ["CAP_KILL"],
}
probe(
    "process.capabilities.bounding",
    CFG,
    "Linux process",
    status_field("CapBnd"),
    _mask(*_CAPS["bounding"]),
    _proc(capabilities=_CAPS),
    doc="capabilities.bounding: the bounding set the process keeps.",
)
probe(
    "process.capabilities.root",
    CFG,
    "Linux process",
    status_field("CapEff") + "; " + status_field("CapPrm"),
    _mask(*_CAPS["permitted"]) + "\n" + _mask(*_CAPS["permitted"]),
    _proc(capabilities=_CAPS),
    doc="capabilities.effective and permitted: uid 0 with noNewPrivileges (the base config) keeps "
    "exactly the permitted set across execve, effective, and nothing more (capabilities(7)).",
)
probe(
    "process.capabilities.inheritable",
    CFG,
    "Linux process",
    status_field("CapInh"),
    _mask("CAP_KILL"),
    _proc(capabilities=_CAPS, user={"uid": 1000, "gid": 1000}),
    doc="capabilities.inheritable: the inheritable set, kept across execve.",
)
_AMBIENT = {
    k: ["CAP_NET_BIND_SERVICE"] for k in ("bounding", "permitted", "effective", "inheritable", "ambient")
}
probe(
    "process.capabilities.ambient",
    CFG,
    "Linux process",
    status_field("CapAmb") + "; " + status_field("CapEff"),
    _mask("CAP_NET_BIND_SERVICE") + "\n" + _mask("CAP_NET_BIND_SERVICE"),
    _proc(capabilities=_AMBIENT, user={"uid": 1000, "gid": 1000}),
    doc="capabilities.ambient: a non-root process keeps its ambient capabilities (and so has them "
    "effective) across execve.",
)
probe(
    "process.capabilities.unknown",
    CFG,
    "Linux process",
    "echo started",
    "started",
    _proc(
        capabilities={
            k: ["CAP_CHOWN", "CAP_NOT_A_CAPABILITY"] for k in ("bounding", "permitted", "effective")
        }
    ),
    level=SHOULD,
    version="1.1.0",
    doc="A capability that cannot be mapped MUST be logged as a warning, and runtimes SHOULD NOT fail "
    "(config.md, since 1.1.0): the container starts.",
)
probe(
    "process.capabilities.ungrantable",
    CFG,
    "Linux process",
    status_field("CapAmb") + "; " + status_field("CapEff"),
    _mask() + "\n" + _mask("CAP_KILL"),
    _proc(capabilities={k: ["CAP_KILL"] for k in ("bounding", "permitted", "effective", "ambient")}),
    level=SHOULD,
    version="1.1.0",
    doc="A capability that cannot be granted (here ambient without inheritable, as `runc spec` "
    "writes it) MUST be logged as a warning and runtimes SHOULD NOT fail (config.md, since 1.1.0): "
    "the container starts with the rest applied.",
)
probe(
    "process.no-new-privileges.true",
    CFG,
    "Linux process",
    status_field("NoNewPrivs"),
    "1",
    _proc(noNewPrivileges=True),
    doc="noNewPrivileges true sets no_new_privs for the process.",
)
probe(
    "process.no-new-privileges.false",
    CFG,
    "Linux process",
    status_field("NoNewPrivs"),
    "0",
    _proc(noNewPrivileges=False),
    level=SHOULD,
    doc="noNewPrivileges false leaves no_new_privs unset (the runtime's own is not set).",
)
probe(
    "process.oom-score-adj.set",
    CFG,
    "POSIX process",
    "cat /proc/self/oom_score_adj",
    "123",
    _proc(oomScoreAdj=123),
    doc="If oomScoreAdj is set, the runtime MUST set oom_score_adj to it.",
)


def _own_oom() -> str:
    with open("/proc/self/oom_score_adj") as f:
        return f.read().strip()


probe(
    "process.oom-score-adj.unset",
    CFG,
    "POSIX process",
    "cat /proc/self/oom_score_adj",
    lambda ctx: _own_oom(),
    doc="If oomScoreAdj is not set, the runtime MUST NOT change oom_score_adj (the suite's value "
    "is inherited).",
)
probe(
    "process.stdio-not-tty",
    CFG,
    "Process",
    "[ -t 0 ] || [ -t 1 ] && echo tty || echo plain",
    "plain",
    doc="terminal false (the default): the process gets the runtime's stdio, not a terminal.",
)
