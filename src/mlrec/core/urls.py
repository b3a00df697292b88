"""The server URLs mlrec accepts: one rule for the settings and the backends.

Database URLs (the settings and the SQL engine), Redis URLs and Kafka bootstrap
server lists. A refused value is described without its password.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from mlrec.core.errors import ConfigurationError

__all__ = [
    "DATABASE_URL_FORMS",
    "KAFKA_BOOTSTRAP_FORMS",
    "REDIS_URL_FORMS",
    "check_redis_url",
    "normalise_database_url",
    "normalise_kafka_bootstrap",
    "redact_url",
    "sqlite_file",
]

DATABASE_URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
"""The accepted forms, in words (error messages)."""

_SCHEME = re.compile(r"(?P<dialect>[A-Za-z0-9]+)(?:\+(?P<driver>[A-Za-z0-9_]+))?://")


def normalise_database_url(url: str) -> str:
    """``url`` as SQLAlchemy should get it: plain PostgreSQL URLs get the psycopg 3 driver.

    Accepted: ``sqlite://...`` (``sqlite+DRIVER://``), ``postgresql://...``
    (``postgresql+DRIVER://``) and ``postgres://...``.

    Raises:
        ConfigurationError: any other scheme (``postgresqlx://``, ``mysql://``,
            ``postgres+DRIVER://``, no scheme at all), naming the accepted forms; a
            server URL whose host and port SQLAlchemy cannot read (a port that is not
            a number); or text that is not UTF-8.
    """
    _check_encodable(url, "database URL")
    match = _SCHEME.match(url)
    dialect = match["dialect"] if match else None
    driver = match["driver"] if match else None
    if match is None or dialect not in ("sqlite", "postgresql", "postgres"):
        # the scheme only: the rest of a URL may hold a password
        scheme = f"scheme {url.split('://', 1)[0]}://" if "://" in url else "no scheme"
        raise ConfigurationError(f"unsupported database URL ({scheme}): use {DATABASE_URL_FORMS}")
    if dialect == "sqlite":
        return url
    if driver is None:
        normalised = "postgresql+psycopg://" + url[match.end() :]
    elif dialect == "postgresql":
        normalised = url
    else:  # postgres+DRIVER: SQLAlchemy knows no "postgres" dialect
        raise ConfigurationError(
            f"unsupported database URL scheme {dialect}+{driver}://: use postgresql+{driver}://"
        )
    _check_server_location(normalised)
    return normalised


def _check_encodable(value: str, what: str) -> None:
    """Refuse text that is not UTF-8 (bytes the OS could not decode, in an env var)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"the {what} holds bytes that are not UTF-8 text; write it in UTF-8"
        ) from None


def sqlite_file(url: str) -> str:
    """The database file of a ``sqlite://`` URL: empty or ``:memory:`` for an in-memory
    database, without the URL's query."""
    path = url.split("://", 1)[1].removeprefix("/")
    return path.split("?", 1)[0]


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``
    (all of the user part when it has no ``:``, as ``redis://secret@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, host = authority.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}://{shown}@{host}{slash}{path}"


def _location(url: str) -> str:
    """The ``host:port`` part of ``url`` (after any ``user:password@``): safe to show."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]


def _check_server_location(url: str) -> None:
    """Refuse a server URL whose host and port SQLAlchemy cannot read (a port that is
    not a number, an unclosed IPv6 bracket): it would fail deep in the engine."""
    from sqlalchemy.engine import make_url  # only for server URLs: SQLite needs none

    try:
        make_url(url)
    except ValueError:
        raise ConfigurationError(
            f"bad host:port {_location(url)!r} in the database URL: "
            f"use {DATABASE_URL_FORMS} (PORT a number)"
        ) from None


REDIS_URL_FORMS = "redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix:///PATH"
"""The accepted Redis URL forms, in words (error messages)."""


def check_redis_url(url: str) -> str:
    """``url`` if the Redis client can use it as given.

    The client reads a database number from the path and silently ignores one that
    is not a number (``redis://h/abc`` would be database 0); such a path is refused.

    Raises:
        ConfigurationError: another scheme, a port that is not a number from 0 to
            65535, a database that is not a number, a ``unix://`` URL without a
            path, or text that is not UTF-8. The message never holds the password.
    """
    _check_encodable(url, "Redis URL")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("must start with redis://, rediss:// or unix://")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ConfigurationError(
            f"bad host:port {_location(url)!r} ({exc}): use {REDIS_URL_FORMS}"
        ) from None
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"a unix:// URL needs the socket's path: {REDIS_URL_FORMS}")
        return url
    database = unquote(parts.path).replace("/", "")
    if database and not database.isdigit():
        raise ConfigurationError(
            f"the database in the path must be a number, got {database!r}: use {REDIS_URL_FORMS}"
        )
    return url


KAFKA_BOOTSTRAP_FORMS = "HOST:PORT[,HOST:PORT...]"
"""The accepted Kafka bootstrap forms, in words (error messages)."""

_KAFKA_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.%A-Za-z]+\]")
_KAFKA_PROTOCOLS = ("plaintext://", "ssl://", "sasl_plaintext://", "sasl_ssl://")


def normalise_kafka_bootstrap(value: str | None) -> str | None:
    """The Kafka bootstrap list as ``entry,entry``, each entry as given but for the
    spaces around it, or None (embedded log).

    Accepts what the client library does: entries separated by commas (spaces
    around them are dropped), each ``HOST[:PORT]`` (the client uses port 9092 when
    it is omitted: none is added here), a host
    name, IPv4 address or ``[IPv6]`` address, optionally after a listener protocol
    (``PLAINTEXT://``, ``SSL://``, ``SASL_PLAINTEXT://``, ``SASL_SSL://``). A
    ``kafka://`` prefix on the whole value is dropped; blank means unset.

    Raises:
        ConfigurationError: an entry that is no such ``HOST[:PORT]`` (another
            scheme such as ``http://``, a port that is not a number from 1 to 65535,
            an empty entry, ``;`` between entries), or text that is not UTF-8.
    """
    if value is None:
        return None
    _check_encodable(value, "Kafka bootstrap server list")
    text = value.strip().removeprefix("kafka://").strip()
    if not text:
        return None
    entries = [entry.strip() for entry in text.split(",")]
    for entry in entries:
        problem = _kafka_entry_problem(entry)
        if problem is not None:
            raise ConfigurationError(f"{problem}: use {KAFKA_BOOTSTRAP_FORMS}")
    return ",".join(entries)


def _kafka_entry_problem(entry: str) -> str | None:
    if not entry:
        return "an empty entry between commas"
    address = entry
    if address.lower().startswith(_KAFKA_PROTOCOLS):
        address = address.split("://", 1)[1]
    elif "://" in address:
        return f"{entry!r}: unsupported scheme {address.split('://', 1)[0]}://"
    host, port = address, None
    if address.startswith("["):  # [IPv6] or [IPv6]:PORT
        host, bracket, rest = address.partition("]")
        host += bracket
        if rest:
            if not rest.startswith(":"):
                return f"{entry!r} is not HOST:PORT"
            port = rest[1:]
    elif ":" in address:
        host, port = address.rsplit(":", 1)
    if _KAFKA_HOST.fullmatch(host) is None:
        return f"{entry!r}: {host!r} is not a host name or address"
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"{entry!r}: the port must be a number from 1 to 65535"
    return None
