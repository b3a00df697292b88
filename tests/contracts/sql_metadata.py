"""Concurrency and crash safety of the SQL metadata store: registry, artifacts, migrations.

Shared by the SQLite (unit) and PostgreSQL (integration) tests. A test module
subclasses :class:`SqlMetadataContract` and provides ``fresh_url``: a factory of
URLs of new, empty databases.

The races are forced deterministically where possible: a ``after_cursor_execute``
hook pauses one transaction at the dangerous point while another one runs. A
correct store makes the second wait (a lock) until the first commits; the pause
then ends on its timeout and both finish correctly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, inspect, text

from mlrec.backends.sql import migrate
from mlrec.backends.sql.artifact_store import SqlArtifactStore
from mlrec.backends.sql.engine import begin_write, create_sql_engine
from mlrec.backends.sql.migrate import upgrade_database
from mlrec.backends.sql.registry import SqlModelRegistry
from mlrec.core.errors import BackendError
from mlrec.models.artifacts import Artifact, write_artifact
from mlrec.models.registry import Stage
from tests.contracts.model_registry import new

HEAD = "0003"
OUR_TABLES = {"model_versions", "feature_entities", "feature_views", "model_artifacts"}
PAUSE_S = 1.0  # how long a paused transaction waits for the other one to finish
ROOT = Path(__file__).resolve().parents[2]


def schema_state(url: str) -> tuple[set[str], list[str]]:
    """(our tables present, rows of alembic_version) at ``url``."""
    engine = create_sql_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            revisions = (
                list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
                if "alembic_version" in tables
                else []
            )
    finally:
        engine.dispose()
    return tables & OUR_TABLES, revisions


def saved_artifact(directory: Path) -> Path:
    write_artifact(
        directory, Artifact(manifest={"algorithm": "test"}, arrays={"x": np.arange(1000)})
    )
    return directory


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# One process per uvicorn worker: waits for round i's go file, runs the migrations on
# round i's database, writes what happened next to the go file.
_MIGRATING_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mlrec.backends.sql.migrate import upgrade_database

    signals, worker, urls = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    (signals / f"ready-{worker}").touch()
    for i, url in enumerate(urls):
        deadline = time.monotonic() + 60
        while not (signals / f"go-{i}").exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        try:
            upgrade_database(url)
            result = "ok"
        except Exception as exc:
            result = type(exc).__name__ + ": " + (str(exc).splitlines() or [""])[0][:200]
        partial = signals / f"partial-{i}-{worker}"
        partial.write_text(result)
        os.replace(partial, signals / f"result-{i}-{worker}")  # never seen half-written
    """
)

# Killed (as by the OOM killer or a pod eviction) while migration 0002 runs.
_CRASHING_MIGRATION = textwrap.dedent(
    """
    import os, sys
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from mlrec.backends.sql.migrate import upgrade_database

    @event.listens_for(Engine, "before_cursor_execute")
    def crash(conn, cursor, statement, *args):
        if "CREATE TABLE feature_entities" in statement:
            os._exit(9)

    upgrade_database(sys.argv[1])
    """
)


class SqlMetadataContract:
    @pytest.fixture
    def fresh_url(self) -> Callable[[], str]:
        raise NotImplementedError

    @pytest.fixture
    def url(self, fresh_url: Callable[[], str]) -> str:
        return fresh_url()

    # -- model registry -----------------------------------------------------------

    def test_concurrent_promotes_leave_exactly_one_production_version(self, url: str) -> None:
        upgrade_database(url)
        registry = SqlModelRegistry(url)
        for _ in range(3):
            registry.register(new())
        registry.promote("movies", 1)

        first_paused, second_done = threading.Event(), threading.Event()
        threads: dict[str, threading.Thread] = {}
        errors: list[BaseException] = []

        def pause_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if (
                threading.current_thread() is threads.get("first")
                and statement.lstrip().upper().startswith("UPDATE")
                and not first_paused.is_set()
            ):
                first_paused.set()
                second_done.wait(PAUSE_S)

        def promote(version: int, done: threading.Event | None) -> None:
            try:
                registry.promote("movies", version)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                if done is not None:
                    done.set()

        event.listen(registry.engine, "after_cursor_execute", pause_first)
        try:
            threads["first"] = threading.Thread(target=promote, args=(2, None))
            threads["first"].start()
            assert first_paused.wait(30)
            threads["second"] = threading.Thread(target=promote, args=(3, second_done))
            threads["second"].start()
            for thread in threads.values():
                thread.join(60)
        finally:
            event.remove(registry.engine, "after_cursor_execute", pause_first)
        assert not errors, errors
        production = [v.version for v in registry.list("movies", Stage.PRODUCTION)]
        assert len(production) == 1, f"production versions: {production}"
        assert registry.get("movies", 1).stage is Stage.ARCHIVED
        registry.engine.dispose()

    def test_register_succeeds_when_others_register_between_its_read_and_insert(
        self, url: str
    ) -> None:
        # Every time the registration reads the latest version number, another
        # registry registers the same name (before the fix on SQLite: it won the
        # number every time and the registration failed after its retries).
        upgrade_database(url)
        registry, other = SqlModelRegistry(url), SqlModelRegistry(url)
        me = threading.current_thread()
        others: list[threading.Thread] = []
        errors: list[BaseException] = []

        def other_registers(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if threading.current_thread() is me and "max(model_versions.version)" in statement:

                def register() -> None:
                    try:
                        other.register(new())
                    except BaseException as exc:  # pragma: no cover - reported below
                        errors.append(exc)

                thread = threading.Thread(target=register)
                others.append(thread)
                thread.start()
                thread.join(PAUSE_S / 2)

        event.listen(registry.engine, "after_cursor_execute", other_registers)
        try:
            registered = registry.register(new())
        finally:
            event.remove(registry.engine, "after_cursor_execute", other_registers)
            for thread in others:
                thread.join(60)
        assert not errors, errors
        versions = sorted(v.version for v in registry.list("movies"))
        assert versions == list(range(1, len(others) + 2)), versions
        assert registered.version in versions
        registry.engine.dispose()
        other.engine.dispose()

    # -- artifact store -----------------------------------------------------------

    def test_put_succeeds_when_the_same_artifact_lands_after_its_check(
        self, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        upgrade_database(url)
        store, other = SqlArtifactStore(url), SqlArtifactStore(url)
        directory = saved_artifact(tmp_path / "saved")
        checks: list[str] = []
        real_has = store.has

        def has_then_other_publishes(sha256: str) -> bool:
            found = real_has(sha256)
            if not checks:
                other.put(directory)  # commits between our check and our insert
            checks.append(sha256)
            return found

        monkeypatch.setattr(store, "has", has_then_other_publishes)
        sha = store.put(directory)
        assert real_has(sha)
        store.fetch(sha, tmp_path / "fetched")
        store.engine.dispose()
        other.engine.dispose()

    def test_concurrent_puts_of_one_artifact_all_succeed(self, url: str, tmp_path: Path) -> None:
        upgrade_database(url)
        store = SqlArtifactStore(url)
        directory = saved_artifact(tmp_path / "saved")
        errors: list[str] = []

        def put(barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                store.put(directory)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])

        for _ in range(8):
            with store.engine.begin() as conn:
                conn.execute(text("DELETE FROM model_artifacts"))
            barrier = threading.Barrier(3)
            threads = [threading.Thread(target=put, args=(barrier,)) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        assert errors == [], errors
        store.engine.dispose()

    # -- migrations ---------------------------------------------------------------

    def test_a_migration_failing_half_way_leaves_nothing_behind(self, url: str) -> None:
        def fail_in_0002(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "CREATE TABLE feature_entities" in statement:
                raise RuntimeError("simulated failure inside migration 0002")

        event.listen(Engine, "before_cursor_execute", fail_in_0002)
        try:
            with pytest.raises(RuntimeError, match="simulated"):
                upgrade_database(url)
        finally:
            event.remove(Engine, "before_cursor_execute", fail_in_0002)
        state = schema_state(url)
        assert state == (set(), []), f"left behind: {state}"
        upgrade_database(url)
        state = schema_state(url)
        assert state == (OUR_TABLES, [HEAD]), f"after the upgrade: {state}"

    def test_a_crash_during_the_first_migration_can_be_restarted(self, url: str) -> None:
        crashed = run_python(_CRASHING_MIGRATION, url)
        assert crashed.returncode == 9, crashed.stderr
        state = schema_state(url)
        assert state == (set(), []), f"left behind: {state}"
        upgrade_database(url)
        state = schema_state(url)
        assert state == (OUR_TABLES, [HEAD]), f"after the upgrade: {state}"
        registry = SqlModelRegistry(url)
        assert registry.register(new()).version == 1
        registry.engine.dispose()

    def test_workers_migrating_a_fresh_database_at_once_all_start(
        self, fresh_url: Callable[[], str], tmp_path: Path
    ) -> None:
        workers, rounds = 4, 3
        urls = [fresh_url() for _ in range(rounds)]
        signals = tmp_path / "signals"
        signals.mkdir()
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _MIGRATING_WORKER, str(signals), str(w), *urls],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(workers)
        ]
        results: dict[int, list[str]] = {}
        try:
            deadline = time.monotonic() + 120
            while len(list(signals.glob("ready-*"))) < workers:
                assert time.monotonic() < deadline, "workers did not start"
                assert all(p.poll() is None for p in processes), "a worker died"
                time.sleep(0.01)
            for i in range(rounds):
                (signals / f"go-{i}").touch()
                while len(list(signals.glob(f"result-{i}-*"))) < workers:
                    assert time.monotonic() < deadline, f"round {i} did not finish"
                    time.sleep(0.01)
                results[i] = sorted(p.read_text() for p in signals.glob(f"result-{i}-*"))
            for process in processes:
                _out, err = process.communicate(timeout=60)
                assert process.returncode == 0, err
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        assert results == {i: ["ok"] * workers for i in range(rounds)}, results
        for url in urls:
            state = schema_state(url)
            assert state == (OUR_TABLES, [HEAD]), f"{url}: {state}"

    def test_upgrading_a_database_at_head_waits_for_no_lock(self, url: str) -> None:
        # Workers restarting on an up-to-date database must not queue behind a long
        # write (SQLite) or an upgrade elsewhere (PostgreSQL): they only read.
        upgrade_database(url)
        engine = create_sql_engine(url)
        outcome: list[BaseException | None] = []

        def upgrade() -> None:
            try:
                upgrade_database(url)
                outcome.append(None)
            except BaseException as exc:  # pragma: no cover - reported below
                outcome.append(exc)

        worker = threading.Thread(target=upgrade)
        try:
            with begin_write(engine) as conn:  # SQLite: holds the write lock
                if conn.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": migrate._MIGRATION_LOCK_KEY},
                    )
                worker.start()
                worker.join(5)
                waited = worker.is_alive()
        finally:
            worker.join(60)
            engine.dispose()
        assert not waited, "upgrade_database waited for a lock on a database at head"
        assert outcome == [None], outcome

    def test_a_database_migrated_by_a_newer_mlrec_is_refused_in_words(self, url: str) -> None:
        # Alembic's "Can't locate revision" was a traceback from every command
        upgrade_database(url)
        engine = create_sql_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
        engine.dispose()

        with pytest.raises(BackendError) as info:
            upgrade_database(url)
        message = str(info.value)
        assert "'0099_future'" in message and f"'{HEAD}'" in message and "newer mlrec" in message

    def test_a_statement_refused_during_a_migration_is_one_line(self, url: str) -> None:
        # e.g. a user without the right to create tables: was SQLAlchemy's traceback
        def refuse(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "CREATE TABLE" in statement:
                raise conn.dialect.loaded_dbapi.ProgrammingError("permission denied for schema x")

        event.listen(Engine, "before_cursor_execute", refuse)
        try:
            with pytest.raises(BackendError) as info:
                upgrade_database(url)
        finally:
            event.remove(Engine, "before_cursor_execute", refuse)
        message = str(info.value)
        assert message.startswith("cannot update the schema of the database ")
        assert message.endswith(": permission denied for schema x")
