"""ocirtctl against the docker 20.10 CLI on this machine, mechanically: every command and
flag ``docker <cmd> --help`` lists (Swarm, plugin and trust aside) exists in ocirtctl's
parser, or is in ``OMITTED`` with the reason it is left out. A flag ocirtctl takes but cannot
honour on this host is refused on one line naming it (``REFUSED``). The new flags' effects
are checked inside real containers in tests/test_containers_docker.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from ocirt.manager.cli import Parser, build_parser

DOCKER = "/usr/bin/docker"
OCIRTCTL = os.path.join(os.path.dirname(sys.executable), "ocirtctl")
OUT_OF_SCOPE = {"config", "node", "plugin", "secret", "service", "stack", "swarm", "trust"}
_FLAG = re.compile(r"^\s+(?:(-\w), )?(--[\w-]+)")

_IMAGE_ALIASES = {
    "history": "history",
    "import": "import",
    "ls": "images",
    "pull": "pull",
    "push": "push",
    "rm": "rmi",
}
LATER = "issue 2.5: not done yet"
LINKS = "legacy container links, deprecated by docker: user networks' DNS names replace them"
SWARM = "Swarm-scoped networks: Swarm is out of scope"
OMITTED: dict[str, str] = {
    "build": "issue 2.7 (build)",
    "builder": "issue 2.7 (build)",
    "image build": "issue 2.7 (build)",
    "commit": "issue 2.7 (commit)",
    "container commit": "issue 2.7 (commit)",
    "context": "issue 2.6 (the Engine API a context points at)",
    "completion": "cobra's shell completion scripts; argparse makes none, and scripts never call it",
    "manifest": "experimental in docker 20.10 (off unless the CLI is in experimental mode)",
    "search": "asks Docker Hub's search API; ocirtctl talks to no registry it is not pointed at",
    "version --kubeconfig": "Kubernetes orchestrator versions (docker stack, out of scope)",
    "run --link": LINKS,
    "network connect --link": LINKS,
    "rm --link": LINKS,
    "run --volume-driver": "only the local volume driver exists: volume plugins are out of scope",
    "--disable-content-trust": "content trust is Notary, part of docker trust (out of scope)",
    "network create --attachable": SWARM,
    "network create --ingress": SWARM,
    "network create --scope": SWARM,
    "network create --config-from": SWARM,
    "network create --config-only": SWARM,
    "network create --ipam-driver": "IPAM plugins (plugins are out of scope)",
    "network connect --driver-opt": "driver options of plugins (out of scope)",
    "volume create --driver": "only the local driver exists: volume plugins are out of scope",
}
for _gap in (
    "diff", "export", "container diff", "container export", "system df", "system prune --filter",
    "history --human", "import --platform", "images --filter", "image prune --filter",
    "container prune --filter", "rmi --no-prune", "network connect --ip6",
    "network connect --link-local-ip", "network create --aux-address", "network create --ipam-opt",
    "network create --ipv6", "network create --label", "network inspect --verbose", "network ls --filter",
    "network prune --filter", "volume create --opt", "volume ls --filter", "volume prune --filter",
    "attach --detach-keys", "attach --sig-proxy", "cp --archive", "cp --follow-link", "exec --detach-keys",
    "exec --privileged", "inspect --size", "logs --details", "logs --until", "ps --size", "pull --all-tags",
    "push --all-tags", "start --detach-keys", "stats --all", "stats --no-trunc", "update --cpu-rt-period",
    "update --cpu-rt-runtime", "update --kernel-memory", "run --attach", "run --blkio-weight-device",
    "run --detach-keys", "run --ip6", "run --link-local-ip", "run --runtime", "run --sig-proxy",
):  # fmt: skip
    OMITTED[_gap] = LATER


def _help(*words: str) -> str:
    done = subprocess.run([DOCKER, *words, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"docker {' '.join(words)} --help: {done.stderr}"
    return done.stdout


def _section(text: str, title: str) -> list[str]:
    """The lines of one ``Title:`` block of a cobra help text."""
    lines = text.splitlines()
    if f"{title}:" not in lines:
        return []
    block = lines[lines.index(f"{title}:") + 1 :]
    return block[: block.index("")] if "" in block else block


def _commands(text: str) -> list[str]:
    return [line.split()[0] for t in ("Management Commands", "Commands") for line in _section(text, t)]


def docker_cli() -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Each docker command path (``("run",)``, ``("container", "ls")``) and its flags."""
    found: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for name in _commands(_help()):
        if name in OUT_OF_SCOPE:
            continue
        text = _help(name)
        found[(name,)] = _flags(text)
        for sub in _commands(text):
            found[(name, sub)] = _flags(_help(name, sub))
    return found


def _flags(text: str) -> list[tuple[str, ...]]:
    """Each option line's spellings: ``("-a", "--all")`` or ``("--rm",)``."""
    out = []
    for line in _section(text, "Options"):
        match = _FLAG.match(line)
        if match and match.group(2) != "--help":
            out.append(tuple(f for f in match.groups() if f))
    return out


def gaps() -> list[str]:
    """What docker has and ocirtctl's parser lacks: ``cmd`` or ``cmd --flag``."""
    ours = build_parser()
    missing = []
    for path, docker_flags in docker_cli().items():
        parser: Parser | None = ours
        for word in path:
            found = parser.commands.get(word) if parser is not None else None
            parser = found if isinstance(found, Parser) else None
        if parser is None:
            missing.append(" ".join(path))
            continue
        for spellings in docker_flags:
            lacking = [f for f in spellings if f not in parser.flags]
            if lacking:  # the long name when both are missing
                missing.append(f"{' '.join(path)} {lacking[-1]}")
    return missing


def omission(gap: str) -> str | None:
    """The ``OMITTED`` key that covers ``gap``: the gap itself, the command (for all its
    flags), or the flag (on every command). ``container run --x`` is ``run --x`` (the same
    parser) and ``create`` shares ``run``'s flags."""
    words = gap.split()
    if words[:2] == ["container", "ls"]:
        words[:2] = ["ps"]
    if words[0] == "container" and len(words) > 1 and words[1] not in ("commit", "diff", "export", "prune"):
        words = words[1:]
    if words[0] == "image" and len(words) > 1 and words[1] in _IMAGE_ALIASES:
        words = [_IMAGE_ALIASES[words[1]], *words[2:]]
    if words[0] == "create" and len(words) > 1:
        words[0] = "run"
    command = [w for w in words if not w.startswith("-")]
    prefixes = [" ".join(command[:n]) for n in range(len(command), 0, -1)]
    for key in (" ".join(words), *prefixes, words[-1]):
        if key in OMITTED:
            return key
    return None


@pytest.fixture(scope="module")
def found_gaps() -> list[str]:
    if shutil.which(DOCKER) is None:
        pytest.fail(f"{DOCKER} (Debian's docker.io CLI) is needed to compare with; apt-get install docker.io")
    return gaps()


def test_every_docker_command_and_flag_exists_or_is_omitted_with_a_reason(found_gaps: list[str]) -> None:
    unlisted = [g for g in found_gaps if omission(g) is None]
    assert not unlisted, "docker has, ocirtctl lacks:\n" + "\n".join(unlisted)


def test_the_omission_list_has_no_stale_entry(found_gaps: list[str]) -> None:
    """An entry that ocirtctl now has must leave the list, so the list stays the truth."""
    stale = set(OMITTED) - {omission(g) for g in found_gaps}
    assert not stale, "in OMITTED but ocirtctl has them:\n" + "\n".join(sorted(stale))
    assert all(reason.strip() for reason in OMITTED.values())


REFUSED = {
    "--cpu-rt-period": "no RT group scheduling in this kernel",
    "--cpu-rt-runtime": "no RT group scheduling in this kernel",
    "--gpus": "no GPU support on this host",
    "--isolation": "Windows containers' isolation",
    "--kernel-memory": "deprecated kernel memory limits",
    "--storage-opt": "per-container quotas",
}


@pytest.mark.parametrize("flag", sorted(REFUSED))
def test_a_flag_this_host_cannot_honour_is_refused_naming_it(flag: str, tmp_path: str) -> None:
    """Never silently ignored: one line, exit 125, before an image is looked for."""
    done = subprocess.run(
        [OCIRTCTL, "--root", str(tmp_path), "run", flag, "x", "127.0.0.1:9/none:1", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 125 and len(lines) == 1, done
    assert lines[0].startswith(f"ocirtctl: {flag}: not supported: "), lines
