"""Download a dataset zip, verify it, and extract it safely.

Verification, in order: the zip's MD5 and/or SHA-256 when pinned, member names
(no absolute paths, no ``..``, all under the expected folder) and their bounded
total size, the CRC of every member, the required files, then the SHA-256 of
pinned extracted files. A damaged zip of any kind is a ``DataError``. Extraction
goes to a temporary folder inside ``data_dir`` that is renamed into place only when
everything passed, so an interrupted or failed download never leaves a
half-extracted dataset behind; the work folder of a download killed before it could
clean up is removed by the next download on the same host. A download shorter than the server's
``Content-Length`` is reported as cut off; one larger than 2 GiB is refused.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from mlrec.core.errors import DataError

__all__ = ["Opener", "Progress", "ZipSource", "download_zip", "sha256_file"]

_CHUNK = 1 << 20
_MAX_EXTRACTED_BYTES = 2 << 30
_MAX_DOWNLOAD_BYTES = 2 << 30

# What zipfile raises on a damaged archive besides BadZipFile: a corrupt deflate
# stream (zlib.error), compressed data ending early (EOFError), an unknown
# compression method (NotImplementedError), an encrypted member (RuntimeError), a
# header offset pointing before the file start (OSError EINVAL, ValueError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
)


class Opener(Protocol):
    """What :func:`urllib.request.urlopen` looks like to us (tests pass their own)."""

    def __call__(self, url: str, *, timeout: float) -> IO[bytes]:
        """Open ``url`` for reading bytes."""
        ...


def _urlopen(url: str, *, timeout: float) -> IO[bytes]:
    response: IO[bytes] = urllib.request.urlopen(url, timeout=timeout)
    return response


@dataclass(frozen=True)
class ZipSource:
    """Where a dataset's zip lives and how to check it.

    Attributes:
        url: ``https://`` (or ``file://``) address of the zip.
        folder: the single top-level folder inside the zip (``"ml-100k"``); an empty
            string means the files sit at the root of the zip.
        required: files that must exist in that folder.
        md5: expected MD5 of the zip (hex), if pinned.
        sha256: expected SHA-256 of the zip (hex), if pinned.
        member_sha256: expected SHA-256 of extracted files, by name in ``folder``.
    """

    url: str
    folder: str
    required: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    member_sha256: Mapping[str, str] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _no_progress(_received: int, _total: int | None) -> None:
    pass


def _content_length(response: IO[bytes]) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


Progress = Callable[[int, int | None], None]
"""Called as bytes arrive: ``(received so far, the server's Content-Length or None)``."""


def _fetch(
    source: ZipSource, target: Path, opener: Opener, timeout: float, progress: Progress
) -> tuple[str, str]:
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    received = 0
    expected: int | None = None
    failed = f"could not download {source.url}"
    try:
        with opener(source.url, timeout=timeout) as response, target.open("wb") as out:
            expected = _content_length(response)
            if expected is not None and expected > _MAX_DOWNLOAD_BYTES:
                raise DataError(
                    f"{failed}: it is {expected} bytes, "
                    f"more than the {_MAX_DOWNLOAD_BYTES} bytes allowed"
                )
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > _MAX_DOWNLOAD_BYTES:
                    raise DataError(
                        f"{failed}: it is more than the {_MAX_DOWNLOAD_BYTES} bytes allowed"
                    )
                md5.update(chunk)
                sha256.update(chunk)
                out.write(chunk)
                progress(received, expected)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{failed}: HTTP {exc.code} {_one_line(exc.reason)}") from None
    except http.client.IncompleteRead:
        raise DataError(
            f"{failed}: the connection closed before the end of the file; try again"
        ) from None
    except http.client.HTTPException as exc:
        raise DataError(
            f"{failed}: the server's answer is not valid HTTP "
            f"({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"{failed}: {_one_line(reason)}") from None
    if expected is not None and received != expected:
        raise DataError(
            f"{failed}: the connection closed after {received} of {expected} bytes; try again"
        )
    return md5.hexdigest(), sha256.hexdigest()


def _check_digest(kind: str, expected: str | None, actual: str, what: str) -> None:
    if expected is not None and expected.lower() != actual:
        raise DataError(
            f"{kind} of {what} is {actual}, expected {expected.lower()}: the download is "
            "corrupt or the file changed upstream; nothing was extracted"
        )


def _check_members(archive: zipfile.ZipFile, source: ZipSource) -> None:
    total = 0
    names = set()
    for info in archive.infolist():
        name = PurePosixPath(info.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
            raise DataError(f"{source.url}: refusing unsafe member name {info.filename!r}")
        if source.folder and name.parts[:1] != (source.folder,):
            raise DataError(
                f"{source.url}: member {info.filename!r} is outside the expected "
                f"folder {source.folder!r}"
            )
        total += info.file_size
        names.add(info.filename)
    if total > _MAX_EXTRACTED_BYTES:
        raise DataError(f"{source.url}: refusing to extract {total} bytes")
    # Only now, with the declared sizes bounded, is every member decompressed: a zip
    # declaring terabytes is refused without spending hours inflating it.
    bad = archive.testzip()
    if bad is not None:
        raise DataError(f"{source.url}: member {bad!r} is corrupt (CRC mismatch)")
    prefix = f"{source.folder}/" if source.folder else ""
    missing = [f for f in source.required if f"{prefix}{f}" not in names]
    if missing:
        raise DataError(f"{source.url}: the zip lacks {', '.join(missing)}")


def _open_zip(path: Path, source: ZipSource) -> zipfile.ZipFile:
    """The downloaded zip, once every member has been read and checked (see module doc)."""
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise DataError(f"{source.url} is not a valid zip file: {_one_line(exc)}") from None
    try:
        _check_members(archive, source)
    except _ZIP_ERRORS as exc:
        archive.close()
        detail = _one_line(exc) or type(exc).__name__
        raise DataError(f"{source.url} is not a valid zip file: {detail}") from None
    except BaseException:
        archive.close()
        raise
    return archive


_WORK_PREFIX = ".mlrec-download-"


def _work_prefix() -> str:
    """A download's work folder names its host and process, so that a later download
    can tell a killed one's leftovers from a download still running."""
    return f"{_WORK_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_abandoned(parent: Path, echo: Callable[[str], None]) -> None:
    """Delete the work folders of downloads on this host whose process is gone (killed
    before their cleanup ran). Other hosts' folders are left alone: ``parent`` may be
    a volume shared by several machines."""
    host_prefix = f"{_WORK_PREFIX}{socket.gethostname()}-"
    for path in parent.glob(f"{glob.escape(host_prefix)}*"):
        pid = path.name[len(host_prefix) :].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            echo(f"Removed {path}, left by an interrupted download")


def download_zip(
    source: ZipSource,
    destination: Path,
    *,
    licence: str = "",
    opener: Opener | None = None,
    echo: Callable[[str], None] = print,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download ``source``, verify it and extract its folder to ``destination``.

    Args:
        source: the zip and its checks.
        destination: the folder to create (e.g. ``<data_dir>/ml-100k``); it must not
            exist yet. Its parent is created if needed.
        licence: terms printed (with ``echo``) before downloading.
        opener: replaces :func:`urllib.request.urlopen` (tests; proxies).
        echo: where progress and the licence go.
        timeout: socket timeout in seconds.
        progress: told the bytes received as the download goes (a progress bar).

    Returns:
        ``destination``, now holding the dataset's files.

    Raises:
        DataError: the download failed, a check failed or ``destination`` exists.
    """
    if destination.exists():
        raise DataError(
            f"{destination} already exists but is not a complete dataset; remove it and try again"
        )
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    if licence:
        echo(licence)
    echo(f"Downloading {source.url} ...")
    _remove_abandoned(parent, echo)
    work = Path(tempfile.mkdtemp(prefix=_work_prefix(), dir=parent))
    try:
        archive_path = work / "download.zip"
        md5, sha256 = _fetch(
            source, archive_path, opener or _urlopen, timeout, progress or _no_progress
        )
        _check_digest("MD5", source.md5, md5, source.url)
        _check_digest("SHA-256", source.sha256, sha256, source.url)
        with _open_zip(archive_path, source) as archive:
            archive.extractall(work / "extracted")
        extracted = work / "extracted" / source.folder if source.folder else work / "extracted"
        for name, expected in source.member_sha256.items():
            _check_digest("SHA-256", expected, sha256_file(extracted / name), name)
        try:
            extracted.rename(destination)
        except OSError:
            # Another download of the same dataset (a second process) got there first.
            if not all((destination / f).is_file() for f in source.required):
                raise
            echo(f"{destination} was completed by another download meanwhile; using it")
            return destination
    finally:
        shutil.rmtree(work, ignore_errors=True)
    echo(f"Extracted to {destination}")
    return destination
