"""What ``checkpoint`` and ``restore`` share: finding CRIU, the flags both pass to it, the
container's bind mounts and stdio as CRIU's external resources, and running it.

CRIU is driven through its command line rather than its RPC (swrk) protocol: the options
are the same, and a failure is read from its log file, whose first ``Error`` line names the
cause. A container's bind mounts (its own, and its cgroups' without a cgroup namespace)
come from outside its mount namespace, so CRIU is told that they are external (``--external
mnt[dest]``) and given their sources again on restore, from the new bundle and cgroup; other
binds of host files (device nodes in a user namespace) are left to CRIU's detection
(``--external mnt[]``) and come back from the same host paths.
Its stdio usually comes from outside too (a pipe or a file of the manager's): a file that
cannot be reached from the container's mounts is dumped as external, and on restore every
such descriptor, and every pipe, is replaced by the restoring ``ocirt``'s own stdio
(``--inherit-fd``), as runc does. The keys are kept in the image directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ocirt.foundation.mountinfo import read_mountinfo
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.api import CriuOptions
    from ocirt.specs.config import Config

STDIO_FILE = "ocirt-stdio.json"
CGROUP_MODES = ("soft", "full", "strict", "ignore")
# runc's --empty-ns takes namespace names; CRIU knows only the network one
_EMPTY_NS = {"network": "net"}


def find(path: str | None) -> str:
    """The global ``--criu`` (a path or a name looked up in PATH); by default the CRIU that
    ``make criu`` puts beside ocirt's interpreter, else ``criu`` from PATH."""
    if path is None:
        beside = os.path.join(os.path.dirname(sys.executable), "criu")
        if os.access(beside, os.X_OK):
            return beside
    name = path or "criu"
    found = shutil.which(name)
    if found is None:
        raise OcirtError(
            f"--criu: {name!r} is not an executable CRIU binary (install criu or pass --criu PATH)"
        )
    return found


def require_dirty_tracking(binary: str, flag: str) -> None:
    """Incremental dumps need the kernel's soft-dirty bits (CONFIG_MEM_SOFT_DIRTY); without
    them CRIU stops at an internal assertion instead of saying so."""
    res = subprocess.run([binary, "check", "--feature", "mem_dirty_track"], capture_output=True, check=False)
    if res.returncode != 0:
        raise OcirtError(
            f"{flag}: this kernel cannot track dirty memory (criu check --feature mem_dirty_track"
            " fails; it needs CONFIG_MEM_SOFT_DIRTY)"
        )


def shared_flags(args: CriuOptions) -> list[str]:
    """The flags ``checkpoint`` and ``restore`` both take, as CRIU options."""
    if args.lazy_pages:
        raise OcirtError("--lazy-pages: not supported by ocirt (it needs a CRIU page server)")
    flags = [
        option
        for option, wanted in (
            ("--tcp-established", args.tcp_established),
            ("--ext-unix-sk", args.ext_unix_sk),
            ("--shell-job", args.shell_job),
            ("--file-locks", args.file_locks),
            ("--auto-dedup", args.auto_dedup),
        )
        if wanted
    ]
    mode = args.manage_cgroups_mode
    if mode is not None and mode not in CGROUP_MODES:
        raise OcirtError(f"--manage-cgroups-mode: {mode!r} is not one of {', '.join(CGROUP_MODES)}")
    flags.append(f"--manage-cgroups={mode}" if mode else "--manage-cgroups")
    if args.empty_ns:
        if args.empty_ns not in _EMPTY_NS:
            raise OcirtError(f"--empty-ns: {args.empty_ns!r} is not supported (only network)")
        flags += ["--empty-ns", _EMPTY_NS[args.empty_ns]]
    return flags


def bind_mounts(cfg: Config, bundle: str) -> list[tuple[str, str]]:
    """(destination, absolute source) of each bind mount of the config."""
    binds = []
    for m in cfg.mounts:
        if m.source and (m.type == "bind" or "bind" in m.options or "rbind" in m.options):
            source = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
            binds.append(("/" + m.destination.strip("/"), source))
    return binds


def cgroup_binds(cfg: Config, cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """Without a cgroup namespace a cgroup mount is made of binds of the container's own
    cgroup directories (``mounts.cgroup_v1``, ``cgroup_v2``): external mounts for CRIU,
    whose sources on restore are the new container's directories."""
    if cfg.linux.namespace("cgroup") is not None:
        return []
    from ocirt.runtime import mounts

    infos = read_mountinfo()
    own = mounts.own_cgroups(cgroup_paths, infos)
    binds = []
    for m in cfg.mounts:
        dest = "/" + m.destination.strip("/")
        if m.type == "cgroup":
            for info in mounts.v1_hierarchies(infos):
                if info.mountpoint in own:
                    binds.append((f"{dest}/{os.path.basename(info.mountpoint)}", own[info.mountpoint]))
        elif m.type == "cgroup2":
            unified = mounts.own_v2(cgroup_paths)
            if unified is not None:
                binds.append((dest, unified))
    return binds


def stdio_keys(pid: int) -> list[str]:
    """CRIU's key for each of fds 0-2 of ``pid`` that restore must replace, else ``""``."""
    own_mounts = {info.mount_id for info in read_mountinfo(pid)}
    keys = []
    for fd in range(3):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            keys.append("")
            continue
        if target.startswith("pipe:"):
            keys.append(target)
        elif target.startswith("/"):
            keys.append(_external_file(pid, fd, own_mounts))
        else:
            keys.append("")  # sockets and anonymous inodes are CRIU's own business
    return keys


def _external_file(pid: int, fd: int, own_mounts: set[int]) -> str:
    """CRIU's id of a file on a mount the container cannot see (hex, as CRIU prints it)."""
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        mnt_id = next(int(line.split()[1]) for line in f if line.startswith("mnt_id:"))
    if mnt_id in own_mounts:
        return ""
    inode = os.stat(f"/proc/{pid}/fd/{fd}").st_ino
    return f"file[{mnt_id:x}:{inode:x}]"


def save_stdio(images: str, keys: list[str]) -> None:
    with open(os.path.join(images, STDIO_FILE), "w") as f:
        json.dump(keys, f)


def load_stdio(images: str) -> list[str]:
    """Images made by other tools carry no such file: nothing is then replaced."""
    try:
        with open(os.path.join(images, STDIO_FILE)) as f:
            keys = json.load(f)
    except FileNotFoundError:
        return ["", "", ""]
    except ValueError as exc:
        raise OcirtError(f"--image-path: {images}/{STDIO_FILE}: {exc}") from None
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise OcirtError(f"--image-path: {images}/{STDIO_FILE}: not a list of strings")
    return keys


def make_dir(path: str, flag: str) -> bool:
    """Create ``path`` (True) or accept an existing directory (False)."""
    try:
        os.makedirs(path, 0o700)
        return True
    except FileExistsError:
        if not os.path.isdir(path):
            raise OcirtError(f"{flag}: {path} exists and is not a directory") from None
        return False
    except OSError as exc:
        raise OcirtError(f"{flag}: {path}: {exc.strerror}") from None


def run(argv: list[str], log_path: str, what: str, pass_fds: tuple[int, ...] = ()) -> None:
    """Run CRIU with its stdio on /dev/null (helpers such as ``ip`` print there), and turn a
    failure into one line: CRIU's last error."""
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, pass_fds=pass_fds, check=False)  # fmt: skip
    if res.returncode != 0:
        cause = last_error(log_path)
        if "vDSO area bounds" in cause:
            cause += " (CRIU before 4.1 cannot run on Linux 6.13 or later: `make criu` builds 4.1)"
        raise OcirtError(f"criu {what} failed: {cause}")


def last_error(log_path: str) -> str:
    """The first error is the cause; later ones report the failure of each enclosing step.
    Failing to raise its own RLIMIT_NOFILE (no CAP_SYS_RESOURCE) is not fatal to CRIU."""
    try:
        with open(log_path, errors="replace") as f:
            errors = [line.split("): ", 1)[-1].strip() for line in f if "Error (" in line]
    except FileNotFoundError:
        return "it wrote no log"
    causes = [e for e in errors if not e.startswith("rlimit:")]
    return (causes or errors or ["no error logged"])[0]
