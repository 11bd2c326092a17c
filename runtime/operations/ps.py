"""``ocirt ps``: the container's processes, as host pids (``--format json``) or as the
host's ``ps`` prints them, keeping the header and the lines of the container's pids.

As in runc, everything after the container id goes to ``ps`` (default ``-ef``), and the
PID column is found by its header.
"""

from __future__ import annotations

from ocirt.runtime import state as statemod
from ocirt.runtime.errors import OcirtError


def container_pids(st: statemod.State) -> list[int]:
    if not st.cgroup:
        alive = st.status in (statemod.CREATED, statemod.RUNNING)
        return statemod.process_tree(st.pid) if alive else []
    from ocirt.runtime.cgroups import load_cgroup

    return load_cgroup(st.cgroup).pids()


def run_ps(ps_args: list[str]) -> str:
    import subprocess

    try:
        res = subprocess.run(["ps", *ps_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        raise OcirtError(f"running ps: {exc.strerror}") from None
    if res.returncode != 0:
        output = " ".join(res.stdout.split())
        raise OcirtError(f"ps {' '.join(ps_args)}: exit status {res.returncode}: {output}")
    return res.stdout


def filter_table(output: str, pids: set[int]) -> str:
    lines = output.splitlines()
    header = lines[0] if lines else ""
    titles = header.split()
    if "PID" not in titles:
        raise OcirtError("ps output has no PID column (add pid to its -o format)")
    index = titles.index("PID")
    kept = [header]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= index:
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise OcirtError(f"ps output: cannot read a pid in {line.strip()!r}") from None
        if pid in pids:
            kept.append(line)
    return "".join(f"{line}\n" for line in kept)
