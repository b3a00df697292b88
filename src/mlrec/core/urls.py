"""The database URLs mlrec accepts: one rule for the settings and the SQL engine."""

from __future__ import annotations

import re

from mlrec.core.errors import ConfigurationError

__all__ = ["DATABASE_URL_FORMS", "normalise_database_url"]

DATABASE_URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
"""The accepted forms, in words (error messages)."""

_SCHEME = re.compile(r"(?P<dialect>[A-Za-z0-9]+)(?:\+(?P<driver>[A-Za-z0-9_]+))?://")


def normalise_database_url(url: str) -> str:
    """``url`` as SQLAlchemy should get it: plain PostgreSQL URLs get the psycopg 3 driver.

    Accepted: ``sqlite://...`` (``sqlite+DRIVER://``), ``postgresql://...``
    (``postgresql+DRIVER://``) and ``postgres://...``.

    Raises:
        ConfigurationError: any other scheme (``postgresqlx://``, ``mysql://``, no
            scheme at all), naming the accepted forms.
    """
    match = _SCHEME.match(url)
    dialect = match["dialect"] if match else None
    driver = match["driver"] if match else None
    if match is None or dialect not in ("sqlite", "postgresql", "postgres"):
        # the scheme only: the rest of a URL may hold a password
        scheme = f"scheme {url.split('://', 1)[0]}://" if "://" in url else "no scheme"
        raise ConfigurationError(f"unsupported database URL ({scheme}): use {DATABASE_URL_FORMS}")
    if dialect == "sqlite" or (driver is not None and dialect == "postgresql"):
        return url
    if driver is not None:  # postgres+DRIVER: SQLAlchemy knows no "postgres" dialect
        raise ConfigurationError(
            f"unsupported database URL scheme {dialect}+{driver}://: use postgresql+{driver}://"
        )
    return "postgresql+psycopg://" + url[match.end() :]
