"""Write the ``ocirt`` (and ``ocirt-shim``) launcher that ``make install`` puts in the venv.

pip's console script starts the interpreter with ``site``: it reads every ``.pth`` file and
Debian's ``sitecustomize`` (about 6 ms here, paid by every ``ocirt`` call). The runtime needs
only two directories from it, so this launcher runs with ``-I -S`` and adds them itself.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -IS
# Written by `python -m ocirt.runtime.launcher` (make install); see that module for why.
import sys
sys.path[:0] = {paths!r}
from {module} import entry
entry()
"""


def launcher_text(module: str = "ocirt.runtime.cli") -> str:
    import ocirt.runtime

    package_root = os.path.dirname(os.path.dirname(os.path.dirname(ocirt.runtime.__file__)))
    paths = [package_root, sysconfig.get_paths()["purelib"]]
    return TEMPLATE.format(python=sys.executable, paths=paths, module=module)


def main() -> int:
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: python -m ocirt.runtime.launcher PATH [MODULE]\n")
        return 2
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write(launcher_text(*sys.argv[2:]))
    os.chmod(tmp, 0o755)
    os.replace(tmp, sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
