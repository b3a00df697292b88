"""Model artifacts stored in the metadata DB, so serving replicas share no volume."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from mlrec.backends.sql.engine import begin_write, create_sql_engine
from mlrec.backends.sql.schema import model_artifacts
from mlrec.core.errors import ArtifactIntegrityError, MlrecError, NotFoundError
from mlrec.models.artifacts import ARRAYS, MANIFEST, verify_artifact

__all__ = ["SqlArtifactStore"]


class SqlArtifactStore:
    """:class:`~mlrec.models.artifact_store.ArtifactStore` in a ``model_artifacts`` table.

    The arrays file is stored as one binary value; at tens of MB per model this is
    what PostgreSQL ``bytea`` handles comfortably.
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = (
            create_sql_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        )

    def put(self, directory: Path) -> str:
        """Store the artifact at ``directory`` unless stored already; returns its sha256.

        Idempotent, also when several publishers put the same artifact at once: the
        content sha256 is the key, so a row already there (or inserted by another
        publisher after our check) is this very artifact.
        """
        sha = str(verify_artifact(directory)["sha256"])
        if self.has(sha):
            return sha
        try:
            with begin_write(self.engine) as conn:
                conn.execute(
                    model_artifacts.insert().values(
                        sha256=sha,
                        manifest=(directory / MANIFEST).read_text(),
                        arrays=(directory / ARRAYS).read_bytes(),
                        size_bytes=(directory / ARRAYS).stat().st_size,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            # another publisher committed the same sha256 first; any other violation
            # (the row is not there) is a real error
            if not self.has(sha):
                raise
        return sha

    def has(self, sha256: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(model_artifacts.c.sha256).where(model_artifacts.c.sha256 == sha256)
            ).first()
        return found is not None

    def fetch(self, sha256: str, destination: Path) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(model_artifacts.c.manifest, model_artifacts.c.arrays).where(
                    model_artifacts.c.sha256 == sha256
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no artifact {sha256[:12]}… in the database")
        destination.mkdir(parents=True, exist_ok=True)
        (destination / ARRAYS).write_bytes(bytes(row.arrays))
        (destination / MANIFEST).write_text(row.manifest)
        try:
            verify_artifact(destination, expected_sha256=sha256)
        except MlrecError as exc:
            raise ArtifactIntegrityError(
                f"artifact {sha256[:12]}… is corrupt in the database: {exc}"
            ) from exc
