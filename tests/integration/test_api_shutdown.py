"""``mlrec serve api`` stops on SIGTERM within Kubernetes' grace period, whatever its
clients do.

The API runs as a subprocess on the embedded defaults (SQLite log, local feature
store, the stream processor in-process) in a data directory of the test's own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.serving import closed_port
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KUBERNETES_GRACE_S = 30


def start_api(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MLREC_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["MLREC_DATA_DIR"] = str(data_dir)
    mlrec = Path(sys.executable).with_name("mlrec")
    process = subprocess.Popen(
        [str(mlrec), "serve", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def healthy() -> bool:
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                return int(answer.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    wait_for(healthy, 60.0, "the API to answer", interval_s=0.2)
    return process


def test_sigterm_with_a_request_never_finished_refuses_it_and_stops_in_time(
    tmp_path: Path,
) -> None:
    # Regression (shutdown audit): uvicorn waited for every request in progress with
    # no limit, so one client that never sent its whole body kept the process up
    # until Kubernetes killed it, and the application's shutdown never ran.
    port = closed_port()
    process = start_api(tmp_path / "data", port)
    try:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.settimeout(KUBERNETES_GRACE_S)
            client.sendall(
                b"POST /v1/events HTTP/1.1\r\nHost: api\r\ncontent-type: application/json\r\n"
                b"content-length: 100\r\nexpect: 100-continue\r\n\r\n"
            )
            # the server asks for the body once the route reads it: the request is in
            # progress; the client sends part of it and no more
            assert client.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            client.sendall(b'{"user_id":')
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=KUBERNETES_GRACE_S)
            answer = client.recv(4096)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"connection: close" in answer.lower()
    assert "Traceback" not in out + err, err
    assert "Application shutdown complete" in err
    # the port is free again at once: a restart works
    restarted = start_api(tmp_path / "data", port)
    restarted.terminate()
    restarted.communicate(timeout=KUBERNETES_GRACE_S)
