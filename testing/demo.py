"""``make demo``: build a busybox bundle and run a container that reports its own isolation."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

from ocirt.testing.bundle import base_config, make_bundle

SCRIPT = r"""
echo "hostname:        $(hostname)"
echo "my pid:          $$ (pid 1 of a new pid namespace)"
echo "processes seen:  $(ls /proc | grep -c '^[0-9]')"
echo "network devices: $(ls /sys/class/net | tr '\n' ' ')"
echo "namespaces:"
for ns in cgroup ipc mnt net pid time user uts; do
  mine=$(readlink /proc/self/ns/$ns)
  eval host=\$HOST_NS_$ns
  [ "$mine" = "$host" ] && verdict="shared with the host" || verdict="own (host has $host)"
  printf '  %-7s %-20s %s\n' "$ns" "$mine" "$verdict"
done
echo "cgroup:          $(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' ')"
limit() { cat "/sys/fs/cgroup/$1" 2>/dev/null || cat "/sys/fs/cgroup/$2"; }
echo "memory limit:    $(limit memory/memory.limit_in_bytes memory.max)"
echo "pids limit:      $(limit pids/pids.max pids.max)"
echo "open files:      $(ulimit -n)"
echo "capabilities:    $(grep CapEff /proc/self/status | cut -f2)"
echo "root is:         $(touch /probe 2>/dev/null && echo writable || echo read-only)"
echo "mounts:          $(wc -l < /proc/self/mountinfo) (own mount table)"
"""


def demo_config() -> dict[str, Any]:
    config = base_config(["sh", "-c", SCRIPT])
    config["hostname"] = "ocirt-demo"
    config["root"] = {"path": "rootfs", "readonly": True}
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    config["process"]["env"] += [
        f"HOST_NS_{ns}={os.readlink(f'/proc/self/ns/{ns}')}"
        for ns in ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
    ]
    linux = config["linux"]
    linux["namespaces"].append({"type": "cgroup"})
    linux["resources"] = {"memory": {"limit": 128 * 1024 * 1024}, "pids": {"limit": 64}}
    config["mounts"].append(
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        }
    )
    return config


def main() -> int:
    ocirt = os.path.join(os.path.dirname(sys.executable), "ocirt")
    with tempfile.TemporaryDirectory(prefix="ocirt-demo-") as tmp:
        bundle = make_bundle(os.path.join(tmp, "bundle"), [], demo_config())
        print(f"$ ocirt run --bundle {bundle} ocirt-demo")
        return subprocess.run(
            [ocirt, "--root", os.path.join(tmp, "state"), "run", "--bundle", bundle, "ocirt-demo"]
        ).returncode


if __name__ == "__main__":
    sys.exit(main())
