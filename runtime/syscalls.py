"""Python face of the compiled syscall layer: errno becomes ``OSError``, strings become bytes.

Everything above this module speaks Python; nothing else imports ``_syscalls``. What the
standard library already wraps well (``os.setresuid``, ``os.mknod``, ``os.chroot``,
``os.setgroups``, ``resource.setrlimit``) is used directly by the callers.
"""

from __future__ import annotations

import errno
import os

from ocirt.runtime._syscalls import ffi, lib

CLONE_NEWNS: int = lib.CLONE_NEWNS
CLONE_NEWUTS: int = lib.CLONE_NEWUTS
CLONE_NEWIPC: int = lib.CLONE_NEWIPC
CLONE_NEWUSER: int = lib.CLONE_NEWUSER
CLONE_NEWPID: int = lib.CLONE_NEWPID
CLONE_NEWNET: int = lib.CLONE_NEWNET
CLONE_NEWCGROUP: int = lib.CLONE_NEWCGROUP
CLONE_NEWTIME: int = lib.CLONE_NEWTIME

MS_RDONLY: int = lib.MS_RDONLY
MS_NOSUID: int = lib.MS_NOSUID
MS_NODEV: int = lib.MS_NODEV
MS_NOEXEC: int = lib.MS_NOEXEC
MS_SYNCHRONOUS: int = lib.MS_SYNCHRONOUS
MS_REMOUNT: int = lib.MS_REMOUNT
MS_MANDLOCK: int = lib.MS_MANDLOCK
MS_DIRSYNC: int = lib.MS_DIRSYNC
MS_NOSYMFOLLOW: int = lib.MS_NOSYMFOLLOW
MS_NOATIME: int = lib.MS_NOATIME
MS_NODIRATIME: int = lib.MS_NODIRATIME
MS_BIND: int = lib.MS_BIND
MS_MOVE: int = lib.MS_MOVE
MS_REC: int = lib.MS_REC
MS_SILENT: int = lib.MS_SILENT
MS_UNBINDABLE: int = lib.MS_UNBINDABLE
MS_PRIVATE: int = lib.MS_PRIVATE
MS_SLAVE: int = lib.MS_SLAVE
MS_SHARED: int = lib.MS_SHARED
MS_RELATIME: int = lib.MS_RELATIME
MS_STRICTATIME: int = lib.MS_STRICTATIME
MS_LAZYTIME: int = lib.MS_LAZYTIME
MNT_DETACH: int = lib.MNT_DETACH
TIOCGPTN: int = lib.TIOCGPTN
TIOCSPTLCK: int = lib.TIOCSPTLCK
TIOCSCTTY: int = lib.TIOCSCTTY
TIOCGWINSZ: int = lib.TIOCGWINSZ
TIOCSWINSZ: int = lib.TIOCSWINSZ

PR_SET_PDEATHSIG: int = lib.PR_SET_PDEATHSIG
PR_SET_DUMPABLE: int = lib.PR_SET_DUMPABLE
PR_SET_NO_NEW_PRIVS: int = lib.PR_SET_NO_NEW_PRIVS
PR_SET_CHILD_SUBREAPER: int = lib.PR_SET_CHILD_SUBREAPER
PR_SET_KEEPCAPS: int = lib.PR_SET_KEEPCAPS
PR_CAPBSET_DROP: int = lib.PR_CAPBSET_DROP
PR_CAPBSET_READ: int = lib.PR_CAPBSET_READ
PR_CAP_AMBIENT: int = lib.PR_CAP_AMBIENT
PR_CAP_AMBIENT_RAISE: int = lib.PR_CAP_AMBIENT_RAISE
PR_CAP_AMBIENT_CLEAR_ALL: int = lib.PR_CAP_AMBIENT_CLEAR_ALL
PR_SET_NAME: int = lib.PR_SET_NAME

RESOLVE_NO_XDEV: int = lib.RESOLVE_NO_XDEV
RESOLVE_NO_MAGICLINKS: int = lib.RESOLVE_NO_MAGICLINKS
RESOLVE_NO_SYMLINKS: int = lib.RESOLVE_NO_SYMLINKS
RESOLVE_BENEATH: int = lib.RESOLVE_BENEATH
RESOLVE_IN_ROOT: int = lib.RESOLVE_IN_ROOT

AT_FDCWD: int = lib.AT_FDCWD
AT_EMPTY_PATH: int = lib.AT_EMPTY_PATH
AT_RECURSIVE: int = lib.AT_RECURSIVE
MOUNT_ATTR_RDONLY: int = lib.MOUNT_ATTR_RDONLY
MOUNT_ATTR_NOSUID: int = lib.MOUNT_ATTR_NOSUID
MOUNT_ATTR_NODEV: int = lib.MOUNT_ATTR_NODEV
MOUNT_ATTR_NOEXEC: int = lib.MOUNT_ATTR_NOEXEC
MOUNT_ATTR__ATIME: int = lib.MOUNT_ATTR__ATIME
MOUNT_ATTR_RELATIME: int = lib.MOUNT_ATTR_RELATIME
MOUNT_ATTR_NOATIME: int = lib.MOUNT_ATTR_NOATIME
MOUNT_ATTR_STRICTATIME: int = lib.MOUNT_ATTR_STRICTATIME
MOUNT_ATTR_NODIRATIME: int = lib.MOUNT_ATTR_NODIRATIME
MOUNT_ATTR_NOSYMFOLLOW: int = lib.MOUNT_ATTR_NOSYMFOLLOW
MOUNT_ATTR_IDMAP: int = lib.MOUNT_ATTR_IDMAP
OPEN_TREE_CLONE: int = lib.OPEN_TREE_CLONE
OPEN_TREE_CLOEXEC: int = lib.OPEN_TREE_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH: int = lib.MOVE_MOUNT_F_EMPTY_PATH
MOVE_MOUNT_T_EMPTY_PATH: int = lib.MOVE_MOUNT_T_EMPTY_PATH

SCMP_ACT_KILL_PROCESS: int = lib.SCMP_ACT_KILL_PROCESS
SCMP_ACT_KILL_THREAD: int = lib.SCMP_ACT_KILL_THREAD
SCMP_ACT_TRAP: int = lib.SCMP_ACT_TRAP
SCMP_ACT_ERRNO: int = lib.OCIRT_SCMP_ACT_ERRNO  # | errno
SCMP_ACT_TRACE: int = lib.OCIRT_SCMP_ACT_TRACE  # | message for the tracer
SCMP_ACT_NOTIFY: int = lib.SCMP_ACT_NOTIFY
SCMP_ACT_LOG: int = lib.SCMP_ACT_LOG
SCMP_ACT_ALLOW: int = lib.SCMP_ACT_ALLOW
SCMP_CMP_NE: int = lib.SCMP_CMP_NE
SCMP_CMP_LT: int = lib.SCMP_CMP_LT
SCMP_CMP_LE: int = lib.SCMP_CMP_LE
SCMP_CMP_EQ: int = lib.SCMP_CMP_EQ
SCMP_CMP_GE: int = lib.SCMP_CMP_GE
SCMP_CMP_GT: int = lib.SCMP_CMP_GT
SCMP_CMP_MASKED_EQ: int = lib.SCMP_CMP_MASKED_EQ
SCMP_FLTATR_CTL_OPTIMIZE: int = lib.SCMP_FLTATR_CTL_OPTIMIZE
SECCOMP_FILTER_FLAG_TSYNC: int = lib.SECCOMP_FILTER_FLAG_TSYNC
SECCOMP_FILTER_FLAG_LOG: int = lib.SECCOMP_FILTER_FLAG_LOG
SECCOMP_FILTER_FLAG_SPEC_ALLOW: int = lib.SECCOMP_FILTER_FLAG_SPEC_ALLOW
SECCOMP_FILTER_FLAG_NEW_LISTENER: int = lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
SECCOMP_FILTER_FLAG_TSYNC_ESRCH: int = lib.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: int = lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV


def _check(rc: int, what: str, path: str | None = None) -> int:
    if rc < 0:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return rc


def _b(value: str | None) -> bytes | object:
    return ffi.NULL if value is None else value.encode()


def unshare(flags: int) -> None:
    _check(lib.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(lib.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = lib.mount(_b(source), target.encode(), _b(fstype), flags, _b(data))
    _check(rc, f"mount {source or fstype or ''} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(lib.umount2(target.encode(), flags), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.ocirt_pivot_root(new_root.encode(), put_old.encode()), "pivot_root", new_root)


def join_session_keyring(name: str, perm: int) -> None:
    """A fresh session keyring named ``name``, with permissions ``perm`` (see keyctl(2))."""
    key = _check(lib.ocirt_join_session_keyring(name.encode()), "keyctl join session keyring")
    _check(lib.ocirt_keyring_setperm(key, perm), "keyctl setperm")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(lib.ocirt_prctl(option, a2, a3, a4, a5), "prctl")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(lib.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(lib.setdomainname(raw, len(raw)), "setdomainname")


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """Open ``path`` relative to ``dirfd`` under the ``resolve`` restrictions of openat2(2)."""
    return _check(
        lib.ocirt_openat2(dirfd, path.encode(), flags | os.O_CLOEXEC, mode, resolve),
        f"open {path}",
        path,
    )


def mount_setattr(
    dirfd: int,
    path: str,
    flags: int,
    attr_set: int,
    attr_clr: int,
    propagation: int = 0,
    userns_fd: int = 0,
) -> None:
    """Change mount attributes, recursively with ``AT_RECURSIVE`` (what MS_REMOUNT cannot);
    ``userns_fd`` is the idmapping of ``MOUNT_ATTR_IDMAP``."""
    rc = lib.ocirt_mount_setattr(dirfd, path.encode(), flags, attr_set, attr_clr, propagation, userns_fd)
    _check(rc, f"mount_setattr {path}", path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """A mount (or with OPEN_TREE_CLONE a detached copy of the tree) as an fd."""
    return _check(lib.ocirt_open_tree(dirfd, path.encode(), flags), f"open_tree {path}", path)


def move_mount(from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
    rc = lib.ocirt_move_mount(from_dfd, from_path.encode(), to_dfd, to_path.encode(), flags)
    _check(rc, f"move_mount {to_path}", to_path)


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return the (effective, permitted, inheritable) sets of ``pid`` as 64-bit masks."""
    data = ffi.new("uint32_t[6]")
    _check(lib.ocirt_capget(pid, data), "capget")
    eff, prm, inh = (data[i] | (data[i + 3] << 32) for i in range(3))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    lo, hi = 0xFFFFFFFF, 32
    data = ffi.new(
        "uint32_t[6]",
        [
            effective & lo,
            permitted & lo,
            inheritable & lo,
            effective >> hi,
            permitted >> hi,
            inheritable >> hi,
        ],
    )
    _check(lib.ocirt_capset(0, data), "capset")


def _scmp(rc: int, what: str) -> int:
    """libseccomp returns ``-errno`` instead of setting errno."""
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def seccomp_api_get() -> int:
    """What libseccomp and the kernel support together (5: SCMP_ACT_NOTIFY, 6: with TSYNC)."""
    return int(lib.seccomp_api_get())


def seccomp_init(default_action: int) -> object:
    """A filter context that libseccomp frees once the returned handle is collected."""
    ctx = lib.seccomp_init(default_action)
    if ctx == ffi.NULL:
        raise OSError(22, "seccomp_init: invalid or unsupported default action")
    return ffi.gc(ctx, lib.seccomp_release)


def seccomp_arch_resolve_name(name: str) -> int:
    """The SCMP_ARCH_* token for libseccomp's name of an architecture, 0 if it has none."""
    return int(lib.seccomp_arch_resolve_name(name.encode()))


def seccomp_arch_add(ctx: object, arch: int) -> None:
    _scmp(lib.seccomp_arch_add(ctx, arch), "seccomp_arch_add")


def seccomp_attr_set(ctx: object, attr: int, value: int) -> None:
    _scmp(lib.seccomp_attr_set(ctx, attr, value), "seccomp_attr_set")


def seccomp_syscall_resolve_name(name: str) -> int:
    """The syscall number (negative for libseccomp's pseudo-syscalls), -1 if unknown."""
    return int(lib.seccomp_syscall_resolve_name(name.encode()))


def seccomp_rule_add(ctx: object, action: int, syscall: int, conds: list[tuple[int, int, int, int]]) -> None:
    """``conds`` are (argument index, SCMP_CMP_*, datum_a, datum_b), AND-ed together."""
    arr = ffi.new(
        "struct scmp_arg_cmp[]", [{"arg": a, "op": o, "datum_a": x, "datum_b": y} for a, o, x, y in conds]
    )
    _scmp(lib.seccomp_rule_add_array(ctx, action, syscall, len(conds), arr), "seccomp_rule_add")


def seccomp_export_bpf(ctx: object, fd: int) -> None:
    _scmp(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")


def seccomp_set_filter(flags: int, program: bytes) -> int:
    """Load a compiled BPF program (as ``seccomp_export_bpf`` writes it) on this thread, or
    on all with SECCOMP_FILTER_FLAG_TSYNC; return the notify fd with ..._NEW_LISTENER."""
    return _check(lib.ocirt_seccomp_filter(flags, ffi.from_buffer(program), len(program) // 8), "seccomp")


def seccomp_flags_known(flags: int) -> bool:
    """Whether the kernel accepts these SECCOMP_FILTER_FLAG_* together, loading nothing."""
    if lib.ocirt_seccomp_filter(flags, ffi.NULL, 0) == 0:
        raise OSError(22, "seccomp: a probe loaded a filter")
    return bool(ffi.errno == 14)


SCHED_OTHER: int = lib.SCHED_OTHER
SCHED_FIFO: int = lib.SCHED_FIFO
SCHED_RR: int = lib.SCHED_RR
SCHED_BATCH: int = lib.SCHED_BATCH
SCHED_IDLE: int = lib.SCHED_IDLE
SCHED_DEADLINE: int = lib.SCHED_DEADLINE
SCHED_FLAG_RESET_ON_FORK: int = lib.SCHED_FLAG_RESET_ON_FORK
SCHED_FLAG_RECLAIM: int = lib.SCHED_FLAG_RECLAIM
SCHED_FLAG_DL_OVERRUN: int = lib.SCHED_FLAG_DL_OVERRUN
SCHED_FLAG_KEEP_POLICY: int = lib.SCHED_FLAG_KEEP_POLICY
SCHED_FLAG_KEEP_PARAMS: int = lib.SCHED_FLAG_KEEP_PARAMS
SCHED_FLAG_UTIL_CLAMP_MIN: int = lib.SCHED_FLAG_UTIL_CLAMP_MIN
SCHED_FLAG_UTIL_CLAMP_MAX: int = lib.SCHED_FLAG_UTIL_CLAMP_MAX
IOPRIO_CLASS_RT: int = lib.IOPRIO_CLASS_RT
IOPRIO_CLASS_BE: int = lib.IOPRIO_CLASS_BE
IOPRIO_CLASS_IDLE: int = lib.IOPRIO_CLASS_IDLE
IOPRIO_CLASS_SHIFT: int = lib.IOPRIO_CLASS_SHIFT
IOPRIO_WHO_PROCESS: int = lib.IOPRIO_WHO_PROCESS
PER_LINUX: int = lib.PER_LINUX
PER_LINUX32: int = lib.PER_LINUX32
UNAME26: int = lib.UNAME26
ADDR_NO_RANDOMIZE: int = lib.ADDR_NO_RANDOMIZE
FDPIC_FUNCPTRS: int = lib.FDPIC_FUNCPTRS
MMAP_PAGE_ZERO: int = lib.MMAP_PAGE_ZERO
ADDR_COMPAT_LAYOUT: int = lib.ADDR_COMPAT_LAYOUT
READ_IMPLIES_EXEC: int = lib.READ_IMPLIES_EXEC
ADDR_LIMIT_32BIT: int = lib.ADDR_LIMIT_32BIT
SHORT_INODE: int = lib.SHORT_INODE
WHOLE_SECONDS: int = lib.WHOLE_SECONDS
STICKY_TIMEOUTS: int = lib.STICKY_TIMEOUTS
ADDR_LIMIT_3GB: int = lib.ADDR_LIMIT_3GB


def sched_setattr(
    pid: int, policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int, period: int
) -> None:
    """sched_setattr(2) with the fields of runtime-spec's ``process.scheduler``."""
    rc = lib.ocirt_sched_setattr(pid, policy, flags, nice, priority, runtime, deadline, period)
    _check(rc, "sched_setattr")


def ioprio_set(pid: int, ioprio: int) -> None:
    """The I/O priority of ``pid`` (0: this thread), as ``class << IOPRIO_CLASS_SHIFT | level``."""
    _check(lib.ocirt_ioprio_set(IOPRIO_WHO_PROCESS, pid, ioprio), "ioprio_set")


def ioprio_get(pid: int) -> int:
    return _check(lib.ocirt_ioprio_get(IOPRIO_WHO_PROCESS, pid), "ioprio_get")


MPOL_DEFAULT: int = lib.MPOL_DEFAULT
MPOL_PREFERRED: int = lib.MPOL_PREFERRED
MPOL_BIND: int = lib.MPOL_BIND
MPOL_INTERLEAVE: int = lib.MPOL_INTERLEAVE
MPOL_LOCAL: int = lib.MPOL_LOCAL
MPOL_PREFERRED_MANY: int = lib.MPOL_PREFERRED_MANY
MPOL_WEIGHTED_INTERLEAVE: int = lib.OCIRT_MPOL_WEIGHTED_INTERLEAVE
MPOL_F_STATIC_NODES: int = lib.MPOL_F_STATIC_NODES
MPOL_F_RELATIVE_NODES: int = lib.MPOL_F_RELATIVE_NODES
MPOL_F_NUMA_BALANCING: int = lib.MPOL_F_NUMA_BALANCING
MAX_NODES = 1024  # the kernel's MAX_NUMNODES on the largest configurations
_MASK_WORDS = MAX_NODES // 64


def set_mempolicy(mode: int, nodes: set[int]) -> None:
    """The calling thread's NUMA policy; ``mode`` may carry MPOL_F_* flags."""
    mask = ffi.new("unsigned long[]", _MASK_WORDS)
    for node in nodes:
        mask[node // 64] |= 1 << (node % 64)
    _check(lib.ocirt_set_mempolicy(mode, mask, _MASK_WORDS * 64 + 1), "set_mempolicy")


def get_mempolicy() -> tuple[int, set[int]]:
    """The calling thread's policy: mode (with its MPOL_F_* flags) and nodes."""
    mode = ffi.new("int *")
    mask = ffi.new("unsigned long[]", _MASK_WORDS)
    _check(lib.ocirt_get_mempolicy(mode, mask, _MASK_WORDS * 64), "get_mempolicy")
    nodes = {w * 64 + b for w in range(_MASK_WORDS) for b in range(64) if mask[w] >> b & 1}
    return mode[0], nodes


def personality(persona: int) -> int:
    """Set the execution domain and flags; return the previous ones (0xffffffff only reads)."""
    return _check(lib.personality(persona), "personality")


def bpf_device_load(program: bytes, license: str, name: str) -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program (8-byte instructions); return its fd."""
    insns = ffi.from_buffer(program)
    rc = lib.ocirt_bpf_device_load(insns, len(program) // 8, license.encode(), name.encode())
    return _check(rc, "bpf BPF_PROG_LOAD")


def bpf_device_attach(cgroup_fd: int, prog_fd: int) -> None:
    """Attach next to the programs already there (BPF_F_ALLOW_MULTI): all must allow."""
    _check(lib.ocirt_bpf_device_attach(cgroup_fd, prog_fd), "bpf BPF_PROG_ATTACH")


def bpf_device_detach(cgroup_fd: int, prog_fd: int) -> None:
    _check(lib.ocirt_bpf_device_detach(cgroup_fd, prog_fd), "bpf BPF_PROG_DETACH")


def bpf_device_programs(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to this cgroup itself (not inherited ones)."""
    size = 64  # BPF_CGROUP_MAX_PROGS; ENOSPC reports the real count
    while True:
        ids = ffi.new("uint32_t[]", size)
        count = ffi.new("uint32_t *", size)
        rc = lib.ocirt_bpf_device_query(cgroup_fd, ids, count)
        if rc < 0 and ffi.errno == errno.ENOSPC and count[0] > size:
            size = count[0]
            continue
        _check(rc, "bpf BPF_PROG_QUERY")
        return [ids[i] for i in range(count[0])]


def bpf_prog_fd(prog_id: int) -> int:
    return _check(lib.ocirt_bpf_prog_get_fd_by_id(prog_id), "bpf BPF_PROG_GET_FD_BY_ID")
