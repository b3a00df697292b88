"""download_zip against a misbehaving HTTP server: cut-off transfers, HTTP errors, replies
that are not HTTP, damaged zips, oversized answers and concurrent downloads.

The server runs in a thread on 127.0.0.1 (port 0); nothing leaves the machine.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mlrec.data.download
from mlrec.core import DataError
from mlrec.data import ZipSource, download_zip

Handler = Callable[[BaseHTTPRequestHandler], None]

U_DATA = "".join(
    f"{u}\t{i}\t{1 + (u + i) % 5}\t88125{u:02d}{i:02d}\n" for u in range(9) for i in range(9)
)
U_ITEM = "".join(f"{i}|Movie {i}|x||u|" + "|".join("0" * 19) + "\n" for i in range(9))


def _zip_bytes(compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("ml-100k/u.data", U_DATA * 20)
        archive.writestr("ml-100k/u.item", U_ITEM)
    return buffer.getvalue()


GOOD = _zip_bytes()


def _send(handler: BaseHTTPRequestHandler, body: bytes, length: int | None = None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/zip")
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)
    handler.close_connection = True


class Server:
    """Answers ``GET /<name>`` with the handler registered under that name."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        routes = self.routes

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                routes[self.path.lstrip("/")](self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def source(self, name: str, handler: Handler) -> ZipSource:
        self.routes[name] = handler
        port = self.httpd.server_address[1]
        return ZipSource(f"http://127.0.0.1:{port}/{name}", "ml-100k", ("u.data", "u.item"))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def _download(source: ZipSource, data_dir: Path, timeout: float = 5.0) -> Path:
    return download_zip(source, data_dir / "ml-100k", echo=lambda _: None, timeout=timeout)


def _fails(source: ZipSource, data_dir: Path, pattern: str) -> str:
    with pytest.raises(DataError, match=pattern) as caught:
        _download(source, data_dir)
    assert list(data_dir.iterdir()) == []  # no dataset folder, no temporary files
    return str(caught.value)


def test_download_over_http_extracts_the_dataset(server: Server, tmp_path: Path) -> None:
    source = server.source("ml-100k.zip", lambda h: _send(h, GOOD))
    target = _download(source, tmp_path)
    assert (target / "u.data").read_text() == U_DATA * 20
    assert [p.name for p in tmp_path.iterdir()] == ["ml-100k"]


def test_download_reports_its_progress_in_bytes(server: Server, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    source = server.source("ml-100k.zip", lambda h: _send(h, GOOD))
    download_zip(
        source,
        tmp_path / "ml-100k",
        echo=lambda _: None,
        timeout=5.0,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls and calls[-1] == (len(GOOD), len(GOOD))
    received = [done for done, _ in calls]
    assert received == sorted(received)


def test_a_download_removes_what_killed_downloads_on_this_host_left(
    server: Server, tmp_path: Path
) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    killed = tmp_path / f".mlrec-download-{host}-{finished.stdout.strip()}-abc123"
    running = tmp_path / f".mlrec-download-{host}-{os.getpid()}-def456"
    elsewhere = tmp_path / ".mlrec-download-another-host-1-ghi789"
    for leftover in (killed, running, elsewhere):
        leftover.mkdir()
        (leftover / "download.zip").write_bytes(b"partial")
    source = server.source("ml-100k.zip", lambda h: _send(h, GOOD))
    _download(source, tmp_path)
    assert not killed.exists()
    assert running.exists() and elsewhere.exists()  # alive here, or not ours to judge


def test_download_cut_off_before_its_content_length_says_so(server: Server, tmp_path: Path) -> None:
    half = GOOD[: len(GOOD) // 2]
    source = server.source("cut.zip", lambda h: _send(h, half, length=len(GOOD)))
    _fails(source, tmp_path, rf"closed after {len(half)} of {len(GOOD)} bytes; try again")


def test_chunked_download_cut_off_mid_chunk_is_a_data_error(server: Server, tmp_path: Path) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.write(b"%x\r\n" % len(GOOD) + GOOD[:100])
        h.close_connection = True

    _fails(server.source("chunked.zip", handler), tmp_path, "closed before the end")


def test_a_reply_that_is_not_http_is_a_data_error(server: Server, tmp_path: Path) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        h.close_connection = True

    _fails(server.source("ssh.zip", handler), tmp_path, "not valid HTTP")


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_name_the_status(server: Server, tmp_path: Path, status: int) -> None:
    source = server.source("error.zip", lambda h: h.send_error(status))
    _fails(source, tmp_path, rf"could not download http://\S+: HTTP {status} ")


def test_a_redirect_loop_is_reported_on_one_line(server: Server, tmp_path: Path) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    message = _fails(server.source("loop.zip", handler), tmp_path, "HTTP 302 .*infinite loop")
    assert "\n" not in message


def _corrupt_deflate(data: bytearray) -> None:
    start = data.index(b"ml-100k/u.data") + len(b"ml-100k/u.data")
    for i in range(start + 10, start + 40):
        data[i] ^= 0xFF


def _unknown_method(data: bytearray) -> None:
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.index(signature)
        data[at + offset : at + offset + 2] = struct.pack("<H", 99)


def _encrypted_flag(data: bytearray) -> None:
    at = data.index(b"PK\x01\x02")
    data[at + 8 : at + 10] = struct.pack("<H", 1)


@pytest.mark.parametrize("damage", [_corrupt_deflate, _unknown_method, _encrypted_flag])
def test_a_damaged_zip_is_a_data_error(
    server: Server, tmp_path: Path, damage: Callable[[bytearray], None]
) -> None:
    data = bytearray(GOOD)
    damage(data)
    source = server.source("damaged.zip", lambda h: _send(h, bytes(data)))
    _fails(source, tmp_path, "is not a valid zip file: .+")


def test_a_zip_whose_directory_offset_is_out_of_range_is_a_data_error(
    server: Server, tmp_path: Path
) -> None:
    data = bytearray(GOOD)
    at = data.index(b"PK\x05\x06")  # end of central directory record
    data[at + 19] = 0xC9  # its offset: zipfile then seeks before byte 0 (OSError EINVAL)
    source = server.source("offset.zip", lambda h: _send(h, bytes(data)))
    _fails(source, tmp_path, "is not a valid zip file")


def test_a_declared_size_over_the_limit_is_refused_before_reading(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlrec.data.download, "_MAX_DOWNLOAD_BYTES", 1000)
    source = server.source("big.zip", lambda h: _send(h, GOOD + b"\0" * 1000))
    _fails(source, tmp_path, r"more than the 1000 bytes allowed")


def test_an_endless_answer_is_cut_at_the_limit(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlrec.data.download, "_MAX_DOWNLOAD_BYTES", 1 << 20)

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")  # no Content-Length: read until closed
        h.end_headers()
        try:
            for _ in range(8):
                h.wfile.write(b"\0" * (1 << 20))
        except OSError:
            pass  # the client hung up, as it should
        h.close_connection = True

    _fails(server.source("endless.zip", handler), tmp_path, "more than the 1048576 bytes allowed")


def test_declared_sizes_are_checked_before_members_are_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlrec.data.download, "_MAX_EXTRACTED_BYTES", 100)
    data = bytearray(_zip_bytes(zipfile.ZIP_STORED))
    at = data.index(b"PK\x01\x02")
    data[at + 16] ^= 0xFF  # a wrong CRC: found only by inflating the member
    archive = tmp_path / "big.zip"
    archive.write_bytes(bytes(data))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    source = ZipSource(archive.as_uri(), "ml-100k", ("u.data",))
    _fails(source, data_dir, "refusing to extract")


def test_concurrent_downloads_of_one_dataset_all_succeed(server: Server, tmp_path: Path) -> None:
    clients = 3
    everyone_asked = threading.Barrier(clients, timeout=4)

    def handler(h: BaseHTTPRequestHandler) -> None:
        everyone_asked.wait()  # all downloads are under way before any finishes
        _send(h, GOOD)

    source = server.source("ml-100k.zip", handler)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            _download(source, tmp_path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["ml-100k"]
    assert (tmp_path / "ml-100k" / "u.data").read_text() == U_DATA * 20
