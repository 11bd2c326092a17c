"""The one registry of log drivers (``ocirt.shim.logs.DRIVERS``) serves the shim, which
writes with a driver, and ``ocirtctl``, which reads back and checks ``--log-opt``: what the
shim writes, the manager reads back as the lines the container printed; and the shim side
stays lean (docs/architecture.md: no json/re/enum/typing/signal/subprocess in the shim)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ocirt.manager.containers import logs, options
from ocirt.manager.errors import ManagerError
from ocirt.shim import args
from ocirt.shim.logs import DRIVERS, Log

# what a container printed, in the chunks the shim read it in: a line split across reads,
# an unterminated last line, text that needs escaping in JSON, and both streams interleaved
CHUNKS = [("stdout", b"hello\nwor"), ("stderr", b'oops "quoted" \\ tab\t\n'), ("stdout", b"ld\nlast")]
EXPECTED = [("stderr", b'oops "quoted" \\ tab\t\n'), ("stdout", b"hello\n"), ("stdout", b"world\n"),
            ("stdout", b"last")]  # fmt: skip


def shim_options(driver: str) -> args.Options:
    return args.parse(["--id", "x", "--bundle", "b", "--state-dir", "/tmp", "--log-path", "/tmp/l",
                       "--log-driver", driver])  # fmt: skip


@pytest.mark.parametrize("name", list(DRIVERS))
def test_what_the_shim_writes_the_manager_reads_back(name: str, tmp_path: object) -> None:
    assert shim_options(name).log_driver == name
    path = f"{tmp_path}/ctr.log"
    log = Log(path, name, 0, 1)
    for stream, data in CHUNKS:
        log.write(stream, data)
    log.close()
    if DRIVERS[name].parse is None:
        assert logs.files(path, 1) == [], f"{name} keeps no file"
        return
    shown, offset = logs.collect(path, name, 1, None, None)
    assert sorted((ln.stream, ln.text) for ln in shown) == sorted(EXPECTED)
    assert all(ln.time.endswith("Z") and "T" in ln.time for ln in shown)
    with open(path, "rb") as f:
        assert offset == len(f.read())


def test_an_unknown_driver_is_refused_by_the_shim_and_by_ocirtctl() -> None:
    with pytest.raises(args.UsageError, match="--log-driver: 'splunk' is not one of"):
        shim_options("splunk")
    with pytest.raises(ManagerError, match=r"^--log-opt: unsupported option 'tag' \(max-size, max-file\)$"):
        options.log_opt("tag=x", "json-file")
    assert options.log_opt("max-file=3", "k8s-file") == ("max-file", "3")


def test_the_shim_side_of_the_registry_stays_lean() -> None:
    heavy = ("json", "re", "enum", "typing", "signal", "subprocess", "dataclasses", "argparse")
    code = (
        "import sys; import ocirt.shim.main, ocirt.shim.server, ocirt.shim.args, ocirt.shim.logs; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []
