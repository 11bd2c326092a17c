"""``ocirtctl system service`` driven by real Docker clients: the docker CLI 28.x (first on
PATH) and Debian's 20.10 (``/usr/bin/docker``, API 1.41: version negotiation), and
docker-py. What they make is seen by ``ocirtctl`` and the reverse; the shims keep
containers running after the service is gone. Every test ends with a leak check."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.ctl import OCIRTCTL, Manager, checked, manager

DOCKER_OLD = "/usr/bin/docker"  # Debian's 20.10: API 1.41


@dataclass
class Api:
    ctl: Manager
    sock: str
    env: dict[str, str]

    def docker(
        self, *args: str, client: str = "docker", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [client, "-H", f"unix://{self.sock}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )
        self.ctl.seen |= set(self.ctl.ids())
        if check:
            assert done.returncode == 0, f"docker {' '.join(args)}: {done.returncode}: {done.stderr}"
        return done


def _serve(root: str, sock: str, idle: str = "0") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [OCIRTCTL, "--root", root, "system", "service", "--time", idle, f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not _answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError(
                f"system service did not come up: {proc.stderr.read() if proc.stderr else ''!r}"
            )
        time.sleep(0.05)
    return proc


def _answers(sock: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = str(tmp_path_factory.mktemp("engine"))
    config = os.path.join(tmp, "docker-config")  # no user's contexts or credentials
    os.makedirs(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = config
    with manager(tmp) as m:
        sock = os.path.join(tmp, "docker.sock")
        proc = _serve(m.root, sock)
        try:
            yield Api(m, sock, env)
        finally:
            _stop(proc)
        assert proc.returncode == 0, proc.returncode
        assert not os.path.exists(sock), "the service left its socket behind"


@pytest.fixture
def api(served: Api) -> Iterator[Api]:
    with checked(served.ctl, lambda: _tidy(served)):
        yield served


def _tidy(api: Api) -> None:
    for name in ("apitest-vol",):
        api.docker("volume", "rm", "-f", name, check=False)


def _http(sock: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sock)
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body


def test_ping_headers_and_errors_in_dockers_shape(api: Api) -> None:
    """The headers clients read from /_ping (Engine API reference: API-Version, OSType,
    Docker-Experimental, Builder-Version), on HEAD too; errors as {"message"} with dockerd's status."""
    for method in ("GET", "HEAD"):
        status, headers, body = _http(
            api.sock, f"{method} /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode()
        )
        assert status == "HTTP/1.1 200 OK"
        assert headers["api-version"] == "1.43" and headers["ostype"] == "linux"
        assert headers["docker-experimental"] == "false" and headers["builder-version"]
        assert body == (b"OK" if method == "GET" else b"")
    status, _, body = _http(
        api.sock, b"GET /v1.41/containers/nope/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    )
    assert status.split()[1] == "404" and "nope" in json.loads(body)["message"]
    status, _, body = _http(api.sock, b"GET /v1.99/_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert status.split()[1] == "400" and "too new" in json.loads(body)["message"]


def test_both_docker_clients_negotiate_version_and_info(api: Api) -> None:
    new = api.docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}").stdout.split()
    assert new == ["1.43", "1.43"], new  # 28.x speaks 1.50 and downgrades to the server's
    old = api.docker(
        "version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}", client=DOCKER_OLD
    )
    assert old.stdout.split() == ["1.41", "1.43"]
    before = len(api.ctl.ids())
    info = api.docker("info", "--format", "{{.Containers}} {{.OSType}} {{.DockerRootDir}}").stdout.split()
    assert info == [str(before), "linux", api.ctl.root]


@pytest.mark.parametrize("client", ["docker", DOCKER_OLD])
def test_docker_cli_run_ps_logs_inspect_stop_rm(api: Api, client: str) -> None:
    name = f"apitest-{os.path.basename(client)}-{os.getpid()}"
    cid = api.docker(
        "run", "-d", "--name", name, "-e", "WHO=api", "-l", "made=api", api.ctl.data,
        "sh", "-c", "echo out $WHO; echo err >&2; exec sleep 100", client=client,
    ).stdout.strip()  # fmt: skip
    assert len(cid) == 64
    # the CLI's store is the service's: ocirtctl sees what docker made
    assert name in api.ctl("ps", "--format", "{{.Names}}").stdout.split()
    listed = api.docker("ps", "--filter", "label=made=api", "--format", "{{.ID}} {{.Names}}", client=client)
    assert listed.stdout.split() == [cid[:12], name]
    deadline = time.monotonic() + 10
    while (
        logs := api.docker("logs", name, client=client)
    ).stdout != "out api\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (logs.stdout, logs.stderr) == ("out api\n", "err\n")  # demultiplexed: each to its own stream
    running = api.docker("inspect", "-f", "{{.State.Running}} {{.Config.Labels.made}}", name, client=client)
    assert running.stdout.split() == ["true", "api"]
    api.docker("stop", "-t", "1", name, client=client)
    stopped = api.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name, client=client)
    # sleep as pid 1 has no SIGTERM handler, so it ignores it: SIGKILL after -t 1, as dockerd does
    assert stopped.stdout.split() == ["exited", "137"]
    assert (
        api.ctl("ps", "-a", "--filter", f"name={name}", "--format", "{{.State}}").stdout.strip() == "exited"
    )
    api.docker("rm", name, client=client)
    assert api.ctl.ids() == []
    gone = api.docker("inspect", name, client=client, check=False)
    assert gone.returncode == 1 and "No such object" in gone.stderr


def test_ocirtctl_container_is_seen_and_removed_over_the_api(api: Api) -> None:
    cid = api.ctl("create", "--name", "apitest-made-by-ctl", api.ctl.data, "true").stdout.strip()
    rows = api.docker("ps", "-a", "--format", "{{.ID}} {{.Status}}").stdout.split("\n")
    assert f"{cid[:12]} Created" in rows
    refused = api.docker("rm", "nosuch", check=False)
    assert refused.returncode != 0 and "nosuch" in refused.stderr
    api.docker("rm", cid[:12])
    assert api.ctl.ids() == []


def test_images_networks_volumes(api: Api) -> None:
    repo = api.ctl.data.rpartition(":")[0]
    images = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert api.ctl.data in images and f"{repo}:1" in images
    listed = api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"host", "none"} <= set(listed)  # docker's pre-defined networks, there from the start
    assert sorted(listed) == sorted(api.ctl("network", "ls", "--format", "{{.Name}}").stdout.split())
    api.docker("volume", "create", "--label", "k=v", "apitest-vol")
    shown = api.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert "apitest-vol" in shown
    assert "apitest-vol" in api.ctl("volume", "ls", "-q").stdout.split()
    api.docker("volume", "rm", "apitest-vol")
    assert "apitest-vol" not in api.ctl("volume", "ls", "-q").stdout.split()


def test_docker_py_containers_and_images(api: Api) -> None:
    import docker  # a dev dependency: a missing one fails here, loudly

    client = docker.DockerClient(base_url=f"unix://{api.sock}", version="auto")
    try:
        out = client.containers.run(api.ctl.data, ["sh", "-c", "echo hi from py"], remove=False)
        assert out == b"hi from py\n"
        c = client.containers.run(api.ctl.data, ["sleep", "100"], detach=True, name="apitest-py")
        assert [x.name for x in client.containers.list()] == ["apitest-py"]
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
        for x in client.containers.list(all=True):
            x.remove()
        assert api.ctl.ids() == []
        tags = [t for image in client.images.list() for t in image.tags]
        assert api.ctl.data in tags
        with pytest.raises(docker.errors.NotFound):
            client.containers.get("apitest-nosuch")
    finally:
        client.close()


def _lines_until(proc: subprocess.Popen[str], last: str, timeout: float = 30) -> list[str]:
    """Lines of ``proc``'s output up to one holding ``last``, read from the fd itself (select
    on a buffered file misses lines already in its buffer)."""
    assert proc.stdout is not None
    fd, data = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while last.encode() not in data:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"no {last!r} in {data!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"the stream ended before {last!r}: {data!r}"
        data += chunk
    lines = data.decode().splitlines()
    return lines[: next(i for i, line in enumerate(lines) if last in line) + 1]


@pytest.mark.parametrize("client", ["docker", DOCKER_OLD])
def test_events_stream_to_the_docker_cli(api: Api, client: str) -> None:
    """``docker events`` follows what happens, whoever does it (here ocirtctl itself); from
    ``--since``, so a client slow to connect misses nothing."""
    name = f"apitest-events-{os.getpid()}"
    proc = subprocess.Popen(
        [client, "-H", f"unix://{api.sock}", "events", "--since", f"{time.time() - 1:.3f}",
         "--filter", f"container={name}",
         "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=api.env,
    )  # fmt: skip
    try:
        api.ctl("run", "--name", name, api.ctl.data, "true")
        api.ctl("rm", name)
        lines = _lines_until(proc, "destroy")
    finally:
        proc.kill()
        proc.wait()
    actions = [line.split()[1] for line in lines]
    assert actions == ["create", "attach", "start", "die", "destroy"] or actions == [
        "create", "start", "die", "destroy",
    ], lines  # fmt: skip
    assert all(line.startswith("container ") and line.endswith(name) for line in lines)


def test_shims_outlive_an_idle_service(api: Api, tmp_path: object) -> None:
    """``--time`` ends the service once idle; the container it started keeps running."""
    sock = os.path.join(str(tmp_path), "idle.sock")
    proc = _serve(api.ctl.root, sock, idle="2")
    try:
        events = subprocess.Popen(["docker", "-H", f"unix://{sock}", "events"], env=api.env)
        time.sleep(1)
        events.kill()  # a stream whose client is gone keeps nothing busy
        events.wait()
        cid = Api(api.ctl, sock, api.env).docker("run", "-d", api.ctl.data, "sleep", "100").stdout.strip()
        proc.wait(timeout=30)
    finally:
        _stop(proc)
    assert proc.returncode == 0 and not os.path.exists(sock)
    assert api.ctl("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    api.ctl("rm", "-f", cid)


def test_docker_on_path_is_28() -> None:
    found = shutil.which("docker")
    assert found is not None and found != DOCKER_OLD


@pytest.mark.parametrize("client", ["docker", DOCKER_OLD])
def test_exec_hijacks_the_connection(api: Api, client: str) -> None:
    """``docker exec``: output demultiplexed to stdout and stderr, stdin through the
    hijacked connection to EOF, the exit code read back from the exec's inspect."""
    name = f"apitest-exec-{os.getpid()}"
    api.docker("run", "-d", "--name", name, api.ctl.data, "sleep", "100", client=client)
    done = api.docker("exec", name, "sh", "-c", "echo out; echo err >&2; exit 3", client=client, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    piped = subprocess.run(
        [client, "-H", f"unix://{api.sock}", "exec", "-i", name, "sh", "-c", "tr a-z A-Z; echo done"],
        input="hello\n", capture_output=True, text=True, timeout=60, env=api.env,
    )  # fmt: skip
    assert (piped.returncode, piped.stdout) == (0, "HELLO\ndone\n"), piped.stderr
    missing = api.docker("exec", name, "/nonexistent", client=client, check=False)
    assert missing.returncode != 0
    api.docker("rm", "-f", name, client=client)


def test_docker_py_exec_run(api: Api) -> None:
    import docker

    client = docker.DockerClient(base_url=f"unix://{api.sock}", version="auto")
    try:
        c = client.containers.run(api.ctl.data, ["sleep", "100"], detach=True)
        code, out = c.exec_run(["sh", "-c", "echo py; exit 2"])
        assert (code, out) == (2, b"py\n")
        code, pair = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert (code, pair) == (0, (b"o\n", b"e\n"))
        c.remove(force=True)
    finally:
        client.close()
