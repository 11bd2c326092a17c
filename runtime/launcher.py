"""Write the ``ocirt`` (and ``ocirt-shim``) launcher that ``make install`` puts in the venv.

pip's console script starts the interpreter with ``site``: it reads every ``.pth`` file and
Debian's ``sitecustomize`` (about 6 ms here, paid by every ``ocirt`` call). The runtime needs
only two directories from it, so the launchers run it with ``-I -S`` and add them.

``ocirt-shim`` is a script. ``ocirt`` is a small C program (``launcher.c``, built here with
``cc``) that runs the interpreter from a detached read-only clone of its directory's mount:
init and exec's process are the interpreter inside the container's pid namespace until
execve, and non-dumpable is no bar to a container holding CAP_SYS_PTRACE, which can open
their ``/proc/<pid>/exe``, keep it, and reopen it for writing once nothing runs the
interpreter (CVE-2019-5736). Through the clone, that reopen fails with EROFS.

Measured here (2 shared cores, fastest of 60 runs, ``python -IS -c pass`` 10.0 ms):

- a sealed memfd copy of the interpreter: 4.7 ms to copy, 24.5 ms in all from a launcher
  (the copy's pages are new to the page cache); re-executing from the runtime instead of a
  launcher adds the interpreter's start and ``run``'s imports again (20.9 ms), so about
  40 ms per create.
- an exec helper in C for the container-facing processes: init does the rootfs, hooks and
  the exec-fifo wait in Python inside the pid namespace, so it would move all of that.
- a read-only bind of the interpreter: it does stop the reopen through the magic link
  (EROFS, the link keeps the mount), but only for a process executed through it; a detached
  clone (open_tree, mount_setattr) needs no mount namespace: 0.02 ms, 10.6 ms in all.
- runc's lower-only overlayfs (fsopen, fsmount): EROFS too, 12.5 ms in all, and needs an
  empty directory on the host for its second lower layer; unlike the bind it cannot be
  remounted writable, but that takes CAP_SYS_ADMIN, which opens the host anyway.

``run``/``exec`` pay only the launcher's exec and the clone: with bench/lifecycle.py's
workloads (medians of 20, twice), ``run`` took 62 and 68 ms with the script launcher, 48
and 69 with this one, ``exec`` 46 and 52 against 50 and 44; within this machine's noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

CODE = """\
import sys
sys.argv[0] = {argv0!r}
sys.path[:0] = {paths!r}
from {module} import entry
entry()
"""
SCRIPT = "#!{python} -IS\n# Written by `python -m ocirt.runtime.launcher` (make install).\n{code}"
RUNTIME = "ocirt.runtime.cli"


def launcher_code(path: str, module: str = RUNTIME) -> str:
    import ocirt.runtime

    package_root = os.path.dirname(os.path.dirname(os.path.dirname(ocirt.runtime.__file__)))
    paths = [package_root, sysconfig.get_paths()["purelib"]]
    return CODE.format(argv0=path, paths=paths, module=module)


def write_script(path: str, module: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(SCRIPT.format(python=sys.executable, code=launcher_code(path, module)))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def build_runtime(path: str) -> None:
    real = os.path.realpath(sys.executable)
    macros = {
        "OCIRT_PYTHON": sys.executable,
        "OCIRT_DIR": os.path.dirname(real),
        "OCIRT_NAME": os.path.basename(real),
        "OCIRT_CODE": launcher_code(path),
    }
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.c")
    defines = [f"-D{name}={_c_string(value)}" for name, value in macros.items()]
    done = subprocess.run(
        ["cc", "-O2", "-o", path + ".tmp", *defines, source], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"cc {source}: {done.stderr.strip()}")
    os.replace(path + ".tmp", path)


def _c_string(value: str) -> str:
    """A C string literal of ``value``, every byte escaped in octal (no quoting to get wrong)."""
    return '"' + "".join(f"\\{byte:03o}" for byte in value.encode()) + '"'


def main() -> int:
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: python -m ocirt.runtime.launcher PATH [MODULE]\n")
        return 2
    path, module = sys.argv[1], (sys.argv[2] if len(sys.argv) == 3 else RUNTIME)
    if module == RUNTIME:
        build_runtime(path)
    else:
        write_script(path, module)
    return 0


if __name__ == "__main__":
    sys.exit(main())
