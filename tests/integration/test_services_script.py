"""scripts/services.sh and scripts/with-services.sh, run on private ports in a tmp dir.

Every test sets ``MLREC_SERVICES_DIR`` and every ``MLREC_TEST_*_PORT``, so the
default instance (other people's servers) is never seen, let alone stopped: the
script only ever signals servers that run from its own directory. Only Redis is
started (it starts in a fraction of a second); the script's other servers follow
the same code paths for pid files, ports and readiness. Needs ``redis-server``:
skipped without it, except under CI, where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _running_in_ci

# integration: it starts real servers (its own, on private ports), if not the shared ones
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services.sh"
WITH_SERVICES = REPO / "scripts" / "with-services.sh"
PORT_VARIABLES = (
    "MLREC_TEST_REDIS_PORT",
    "MLREC_TEST_PG_PORT",
    "MLREC_TEST_KAFKA_PORT",
    "MLREC_TEST_KAFKA_CONTROLLER_PORT",
    "MLREC_TEST_PROMETHEUS_PORT",
    "MLREC_TEST_PROMETHEUS_TARGET_PORT",
)
PID_FILES = (
    "redis/redis.pid",
    "postgres/data/postmaster.pid",
    "kafka/kafka.pid",
    "prometheus/prometheus.pid",
)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _needs_redis() -> None:
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        return
    message = "redis-server/redis-cli are not installed (scripts/services.sh up installs them)"
    if _running_in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


class Services:
    """One private instance of the scripts: its own directory and ports."""

    def __init__(self, tmp: Path, name: str = "svc") -> None:
        self.dir = tmp / name
        ports = _free_ports(len(PORT_VARIABLES))
        self.ports = dict(zip(PORT_VARIABLES, (str(p) for p in ports), strict=True))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MLREC_TEST_") and k != "MLREC_SERVICES_DIR"
        }
        self.env.update(self.ports)
        self.env["MLREC_SERVICES_DIR"] = str(self.dir)
        self.env["MLREC_SERVICES_TIMEOUT"] = "20"

    @property
    def redis_port(self) -> int:
        return int(self.ports["MLREC_TEST_REDIS_PORT"])

    def run(
        self, *args: str, script: Path = SERVICES, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.dir.parent,
        )

    def redis_pid(self) -> int:
        return int((self.dir / "redis" / "redis.pid").read_text().split()[0])


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    instance = Services(tmp_path)
    yield instance
    instance.run("down")  # this instance's directory only


def test_stale_pid_files_name_no_server_and_down_signals_nobody(services: Services) -> None:
    """A pid file left by a crash may name a pid now used by anything: never ours to kill."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        for name in PID_FILES:
            path = services.dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{bystander.pid}\n")

        status = services.run("status")
        assert status.returncode == 3, status
        assert status.stdout.split() == [
            "redis", "stopped", "postgres", "stopped", "kafka", "stopped", "prometheus", "stopped"
        ]  # fmt: skip

        down = services.run("down")
        assert down.returncode == 0, down.stderr
        assert "was not running" in down.stderr
        time.sleep(0.2)
        assert bystander.poll() is None, "down killed a process that was not its server"
        assert not any((services.dir / name).exists() for name in PID_FILES)
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MLREC_TEST_REDIS_PORT", "abc", "MLREC_TEST_REDIS_PORT=abc is not a port number"),
        ("MLREC_TEST_PG_PORT", "70000", "MLREC_TEST_PG_PORT=70000 is not a port number"),
        ("MLREC_SERVICES_TIMEOUT", "0", "MLREC_SERVICES_TIMEOUT=0"),
    ],
)
def test_a_bad_override_fails_by_name(
    services: Services, variable: str, value: str, message: str
) -> None:
    result = services.run("up", **{variable: value})
    assert result.returncode == 1
    assert message in result.stderr
    assert not services.dir.exists(), "nothing may start on a bad setting"


def test_one_port_for_two_servers_is_refused(services: Services) -> None:
    port = services.ports["MLREC_TEST_KAFKA_PORT"]
    result = services.run("up", MLREC_TEST_KAFKA_CONTROLLER_PORT=port)
    assert result.returncode == 1
    assert f"port(s) {port} given to two servers" in result.stderr


def test_up_refuses_a_port_another_process_holds(services: Services) -> None:
    _needs_redis()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", services.redis_port))
        squatter.listen()
        result = services.run("up", "redis")
    assert result.returncode == 1
    assert "already in use by another process (set MLREC_TEST_REDIS_PORT" in result.stderr
    assert services.run("status", "redis").returncode == 3


def test_redis_lifecycle_in_a_relative_directory(tmp_path: Path) -> None:
    """up, up again, status, env, down, down again; MLREC_SERVICES_DIR given relative."""
    _needs_redis()
    instance = Services(tmp_path)
    instance.env["MLREC_SERVICES_DIR"] = "svc"  # relative to cwd (tmp_path)
    try:
        first = instance.run("up", "redis")
        assert first.returncode == 0, first.stderr
        assert f"MLREC_TEST_REDIS_URL=redis://127.0.0.1:{instance.redis_port}/0" in first.stdout
        assert (instance.dir / "env").read_text() == first.stdout
        assert _answers_ping(instance.redis_port)
        pid = instance.redis_pid()

        again = instance.run("up", "redis")
        assert again.returncode == 0, again.stderr
        assert "redis already running" in again.stderr
        assert instance.redis_pid() == pid

        status = instance.run("status", "redis")
        assert status.returncode == 0
        assert status.stdout.split()[:4] == ["redis", "running", "pid", str(pid)]

        assert instance.run("down", "redis").returncode == 0
        assert not _alive(pid)
        assert not _answers_ping(instance.redis_port)
        twice = instance.run("down", "redis")
        assert twice.returncode == 0
        assert "redis was not running" in twice.stderr
        assert instance.run("status", "redis").returncode == 3
        # Everything stayed in the services directory.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["svc"]
    finally:
        instance.run("down")


def test_a_server_of_another_instance_is_not_ours(tmp_path: Path) -> None:
    """Another directory's Redis (same program) named by our pid file: not reported, not stopped."""
    _needs_redis()
    ours, theirs = Services(tmp_path, "ours"), Services(tmp_path, "theirs")
    try:
        assert theirs.run("up", "redis").returncode == 0
        (ours.dir / "redis").mkdir(parents=True)
        (ours.dir / "redis" / "redis.pid").write_text(f"{theirs.redis_pid()}\n")
        (ours.dir / "redis" / "port").write_text(f"{theirs.redis_port}\n")

        assert ours.run("status", "redis").stdout.split() == ["redis", "stopped"]
        up = ours.run("up", "redis")  # its own server, on its own port
        assert up.returncode == 0, up.stderr
        assert ours.redis_pid() != theirs.redis_pid()
        assert ours.run("down", "redis").returncode == 0
        assert _answers_ping(theirs.redis_port), "down stopped another instance's server"
    finally:
        ours.run("down")
        theirs.run("down")


def test_up_gives_up_on_a_hung_server_within_its_timeout(services: Services) -> None:
    """A running server that accepts connections but never answers fails `up` within
    its timeout (it must not hang it), and is reported, not killed: it was not started
    by this `up` (it may be shared, or busy)."""
    _needs_redis()
    assert services.run("up", "redis").returncode == 0
    pid = services.redis_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = services.run("up", "redis", MLREC_SERVICES_TIMEOUT="2", timeout=60)
        assert result.returncode == 1
        assert f"redis was already running (pid {pid}) but did not answer within 2s" in (
            result.stderr
        )
        assert time.monotonic() - started < 30
        assert _alive(pid)
        # `status` only sees that its process is there and its port accepts.
        assert services.run("status", "redis").stdout.split()[:2] == ["redis", "running"]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert services.run("up", "redis").returncode == 0  # answering again: fine


@pytest.fixture
def other_servers(services: Services) -> Iterator[None]:
    """Addresses that answer for PostgreSQL, Kafka and Prometheus, so with-services
    uses them as given and only Redis is left for it to start."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        services.env["MLREC_TEST_DATABASE_URL"] = f"postgresql+psycopg://u:p@{address}/db"
        services.env["MLREC_TEST_KAFKA_BOOTSTRAP"] = address
        services.env["MLREC_TEST_PROMETHEUS_URL"] = f"http://{address}"
        yield


@pytest.mark.usefixtures("other_servers")
def test_with_services_stops_what_it_started_and_passes_the_exit_code(
    services: Services,
) -> None:
    _needs_redis()
    url = f"redis://127.0.0.1:{services.redis_port}/0"
    result = services.run(
        "sh", "-c", f'test "$MLREC_TEST_REDIS_URL" = "{url}" && exit 7', script=WITH_SERVICES
    )
    assert result.returncode == 7, result.stderr
    assert "stopping redis" in result.stderr
    assert services.run("status", "redis").returncode == 3


@pytest.mark.usefixtures("other_servers")
def test_with_services_leaves_running_servers_running(services: Services) -> None:
    _needs_redis()
    assert services.run("up", "redis").returncode == 0
    pid = services.redis_pid()
    result = services.run("true", script=WITH_SERVICES)
    assert result.returncode == 0, result.stderr
    assert "stopping" not in result.stderr
    assert _alive(pid)
    assert _answers_ping(services.redis_port)
