"""Where model artifacts live, addressed by their content sha256.

Serving replicas fetch a version's artifact by checksum into a local cache, so they
need no shared volume: the metadata DB (``mlrec.backends.sql``) can hold the
artifacts too. :class:`LocalArtifactStore` is the models-directory layout.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Protocol

from mlrec.core.errors import ArtifactIntegrityError, NotFoundError
from mlrec.models.artifacts import ARRAYS, MANIFEST, sha256_problem, verify_artifact
from mlrec.models.base import Recommender
from mlrec.models.registry import ModelVersion

__all__ = [
    "CACHED_ARTIFACTS_KEPT",
    "ArtifactStore",
    "LocalArtifactStore",
    "fetch_cached",
    "load_version",
]

log = logging.getLogger(__name__)


class ArtifactStore(Protocol):
    """Content-addressed storage of artifact directories."""

    def put(self, directory: Path) -> str:
        """Store a verified artifact directory; returns its sha256 (idempotent)."""
        ...

    def has(self, sha256: str) -> bool:
        """Whether an artifact with this checksum is stored."""
        ...

    def fetch(self, sha256: str, destination: Path) -> None:
        """Write the artifact's files into ``destination`` (created).

        Raises:
            NotFoundError: no artifact with this checksum.
        """
        ...


def _check_sha256(sha256: str) -> None:
    """Refuse a sha256 that is not one (it would name a path outside the store's
    directory, e.g. ``../spool`` in a registry row)."""
    problem = sha256_problem(sha256)
    if problem is not None:
        raise ArtifactIntegrityError(problem)


def _install(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (a concurrent identical copy may win)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".incoming-"))
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


class LocalArtifactStore:
    """Artifacts as directories ``<root>/<sha256>/`` on a (possibly shared) filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, directory: Path) -> str:
        sha = str(verify_artifact(directory)["sha256"])
        if not self.has(sha):
            _install(directory, self.root / sha)
        return sha

    def has(self, sha256: str) -> bool:
        if sha256_problem(sha256) is not None:
            return False
        return (self.root / sha256 / MANIFEST).is_file() and (self.root / sha256 / ARRAYS).is_file()

    def fetch(self, sha256: str, destination: Path) -> None:
        _check_sha256(sha256)
        if not self.has(sha256):
            raise NotFoundError(f"no artifact {sha256[:12]}… in {self.root}")
        _install(self.root / sha256, destination)


def _complete(local: Path) -> bool:
    return (local / MANIFEST).is_file() and (local / ARRAYS).is_file()


def fetch_cached(store: ArtifactStore, sha256: str, cache_dir: Path) -> Path:
    """The local directory of an artifact, fetching it into ``cache_dir`` if needed.

    A cached directory missing one of the artifact's files (a crash, a disk cleanup)
    is discarded and fetched again; the content is not verified here (loading does).

    Raises:
        ArtifactIntegrityError: ``sha256`` is not a sha256 (64 lowercase hex digits):
            nothing is touched on disk.
        NotFoundError: it is not cached and ``store`` has no artifact with it.
    """
    _check_sha256(sha256)
    local = cache_dir / sha256
    if not _complete(local):
        if local.exists():
            _discard(local)  # else the new copy could not be installed in its place
        staging = Path(tempfile.mkdtemp(dir=cache_dir if cache_dir.exists() else None))
        try:
            store.fetch(sha256, staging / "artifact")
            _install(staging / "artifact", local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return local


def load_version(version: ModelVersion, store: ArtifactStore, cache_dir: Path) -> Recommender:
    """Load a registered version, verifying the artifact against the registry's sha256.

    The local cache is only a copy: if the cached artifact cannot be loaded for any
    reason (a missing file, an unreadable or garbled manifest, a checksum mismatch),
    it is discarded and fetched again from ``store`` once, and that copy is verified
    and loaded.

    Raises:
        NotFoundError: the store has no artifact with the version's sha256.
        ModelError: the store's copy cannot be loaded either
            (:class:`~mlrec.core.errors.ArtifactIntegrityError` if it does not match
            the registry's sha256).
    """
    from mlrec.models import load_model

    cache_dir.mkdir(parents=True, exist_ok=True)
    local = fetch_cached(store, version.artifact_sha256, cache_dir)
    try:
        model = load_model(local, expected_sha256=version.artifact_sha256)
    except Exception as exc:
        # a crash mid-write, a disk error, a file deleted or edited by hand: whatever
        # is wrong with the local copy, the store's copy is the reference
        log.warning("cached artifact %s cannot be loaded (%s); fetching it again", local, exc)
        _discard(local)
        local = fetch_cached(store, version.artifact_sha256, cache_dir)
        model = load_model(local, expected_sha256=version.artifact_sha256)
    _prune_cache(cache_dir, local)
    return model


CACHED_ARTIFACTS_KEPT = 3
"""Artifacts a model cache keeps: the one just loaded and the most recently loaded
others (a rollback is then a local load); older ones are fetched again if needed."""


def _prune_cache(cache_dir: Path, loaded: Path) -> None:
    """Mark ``loaded`` as just used and discard all but the latest-used artifacts.

    Another process sharing the cache may be loading one of those discarded: its load
    then fails on the missing copy and fetches it again (see :func:`load_version`).
    """
    try:
        os.utime(loaded)
        cached = [
            (entry.stat().st_mtime, entry)
            for entry in cache_dir.iterdir()
            if entry != loaded and sha256_problem(entry.name) is None and entry.is_dir()
        ]
    except OSError as exc:  # pruning is housekeeping: never fail a load for it
        log.debug("model cache %s not pruned: %s", cache_dir, exc)
        return
    cached.sort(reverse=True)
    for _, stale in cached[CACHED_ARTIFACTS_KEPT - 1 :]:
        _discard(stale)


def _discard(directory: Path) -> None:
    """Move ``directory`` aside atomically, then delete it (a reader never sees half)."""
    # unique: a leftover of an earlier discard must not block this one
    trash = directory.with_name(f".discard-{directory.name}-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(directory, trash)
    except OSError:
        return  # another process moved it first
    shutil.rmtree(trash, ignore_errors=True)
