"""The mlrec exception hierarchy.

Every error mlrec raises on purpose derives from :class:`MlrecError`, so callers
can catch one type; services map the subclasses to HTTP status codes.

    MlrecError
    ├── ConfigurationError        settings that cannot work (bad URL, bad value)
    ├── DataError                 input data that cannot be read
    │   └── DataFormatError       a malformed row: carries path and line number
    ├── NotFoundError             an unknown user, item, model, view, ...
    ├── ValidationError           a well-formed request with a bad value
    ├── ModelError                a model that cannot fit, load or answer
    │   └── ArtifactIntegrityError  an artifact whose sha256 does not match
    └── BackendError              a dependency (Redis, Kafka, SQL) failed
        └── BackendUnavailableError  ... because it cannot be reached
"""

from __future__ import annotations

__all__ = [
    "ArtifactIntegrityError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "DataError",
    "DataFormatError",
    "MlrecError",
    "ModelError",
    "NotFoundError",
    "ValidationError",
]


class MlrecError(Exception):
    """Base class of every error mlrec raises on purpose."""


class ConfigurationError(MlrecError):
    """Settings that cannot work, e.g. an unsupported URL scheme."""


class DataError(MlrecError):
    """Input data that cannot be read or used."""


class DataFormatError(DataError):
    """A malformed row in an input file.

    Args:
        path: the file that was being read.
        line: 1-based line number of the bad row.
        problem: what was wrong with it, in words.
    """

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}, line {line}: {problem}")


class NotFoundError(MlrecError):
    """A named thing (user, item, model, feature view) does not exist."""


class ValidationError(MlrecError):
    """A request or argument that is well-formed but has a bad value."""


class ModelError(MlrecError):
    """A model that cannot be fitted, loaded or asked."""


class ArtifactIntegrityError(ModelError):
    """A model artifact whose checksum does not match its manifest."""


class BackendError(MlrecError):
    """A dependency (Redis, Kafka, SQL database) failed."""


class BackendUnavailableError(BackendError):
    """A dependency cannot be reached; callers degrade instead of failing."""
