"""``ocirt spec`` and ``ocirt validate`` through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from ocirt.runtime import specgen
from ocirt.specs import schema
from ocirt.specs.config import Config

OCIRT = os.path.join(os.path.dirname(sys.executable), "ocirt")


def ocirt(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OCIRT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def read_config(bundle: Any) -> dict[str, Any]:
    with open(os.path.join(bundle, "config.json")) as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def write_config(bundle: Any, config: Any) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)


def test_spec_writes_runc_style_default(tmp_path: Any) -> None:
    res = ocirt("spec", cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == res.stderr == ""
    with open(tmp_path / "config.json") as f:
        text = f.read()
    assert text.startswith('{\n\t"ociVersion": "1.3.0",\n\t"process": {\n\t\t"terminal": true,')
    config = json.loads(text)
    assert config == specgen.default_spec()
    assert schema.validate_config(config) == []
    Config(config)
    assert config["hostname"] == "ocirt"
    assert config["process"]["args"] == ["sh"]
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert [ns["type"] for ns in config["linux"]["namespaces"]] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
        "cgroup",
    ]
    assert [m["destination"] for m in config["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]


def test_spec_into_bundle_flag(tmp_path: Any) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    res = ocirt("spec", "--bundle", str(bundle), cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "config.json").exists()
    assert read_config(bundle)["ociVersion"] == "1.3.0"


def test_spec_rootless(tmp_path: Any) -> None:
    res = ocirt("spec", "--rootless", cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    config = read_config(tmp_path)
    assert schema.validate_config(config) == []
    Config(config)
    linux = config["linux"]
    types = [ns["type"] for ns in linux["namespaces"]]
    assert "network" not in types and types[-1] == "user"
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    mounts = {m["destination"]: m for m in config["mounts"]}
    assert mounts["/sys"] == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert "gid=5" not in mounts["/dev/pts"]["options"]
    assert "mode=0620" in mounts["/dev/pts"]["options"]


def test_rootless_leaves_its_input_alone() -> None:
    spec = specgen.default_spec()
    specgen.rootless(spec, 1000, 1000)
    assert spec == specgen.default_spec()


def test_spec_refuses_to_overwrite(tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text("mine")
    res = ocirt("spec", cwd=str(tmp_path))
    assert res.returncode == 1
    assert res.stderr == "ocirt: File config.json exists. Remove it first\n"
    assert (tmp_path / "config.json").read_text() == "mine"


def test_spec_missing_bundle(tmp_path: Any) -> None:
    res = ocirt("spec", "--bundle", str(tmp_path / "nope"), cwd=str(tmp_path))
    assert res.returncode == 1
    assert res.stderr == f"ocirt: spec: bundle {tmp_path / 'nope'}: not a directory\n"


def test_validate_accepts_spec_output(tmp_path: Any) -> None:
    assert ocirt("spec", cwd=str(tmp_path)).returncode == 0
    res = ocirt("validate", cwd=str(tmp_path))
    assert (res.returncode, res.stdout, res.stderr) == (0, "config.json: valid (runtime-spec 1.3.0)\n", "")
    res = ocirt("validate", "--bundle", str(tmp_path), cwd="/")
    assert (res.returncode, res.stdout) == (0, "config.json: valid (runtime-spec 1.3.0)\n")


def test_validate_lists_every_schema_error(tmp_path: Any) -> None:
    config = specgen.default_spec()
    del config["ociVersion"]
    config["process"]["user"]["uid"] = -1
    config["linux"]["namespaces"].append({"type": "bogus"})
    write_config(tmp_path, config)
    res = ocirt("validate", cwd=str(tmp_path))
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.splitlines() == [
        'ocirt: config.json: linux.namespaces[6].type: "bogus" is not one of: "pid", "network", "mount", '
        '"ipc", "uts", "user", "cgroup", "time"',
        "ocirt: config.json: ociVersion: is required",
        "ocirt: config.json: process.user.uid: -1 is less than the minimum of 0",
    ]


def test_validate_reports_semantic_errors(tmp_path: Any) -> None:
    """Well-formed, but a hostname needs a new uts namespace: only the typed parser knows."""
    config = specgen.default_spec()
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "uts"]
    write_config(tmp_path, config)
    res = ocirt("validate", cwd=str(tmp_path))
    assert res.returncode == 1
    assert res.stderr == (
        "ocirt: config.json: hostname: setting it needs a new uts namespace in linux.namespaces\n"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "ocirt: config.json: cannot read {path}: No such file or directory"),
        ('{"ociVersion": "1.3.0",', "ocirt: config.json: not valid JSON: "),
        (b"\xff\xfe{}", "ocirt: config.json: cannot read {path}: not UTF-8 text"),
    ],
    ids=["missing", "bad json", "not utf-8"],
)
def test_validate_unreadable(tmp_path: Any, content: str | bytes | None, expected: str) -> None:
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    res = ocirt("validate", "--bundle", str(tmp_path), cwd="/")
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected.format(path=path)), res.stderr
