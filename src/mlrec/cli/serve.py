"""``mlrec serve``: run the services (API, stream processor)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mlrec.cli.common import console, describe_os_error, err_console, fail, settings, warn
from mlrec.core.errors import BackendUnavailableError
from mlrec.core.urls import redact_url

if TYPE_CHECKING:
    from mlrec.services.api.config import ApiSettings

serve_app = typer.Typer(help="Run mlrec services.", no_args_is_help=True)

log = logging.getLogger(__name__)

PortOption = Annotated[
    int | None,
    typer.Option(min=1, max=65535, help="Port (default MLREC_PORT, 8000)."),
]
"""``--port`` of the API (``serve api``, ``up``); unset means ``MLREC_PORT``."""


def check_listen_address(host: str, port: int, host_source: str, port_source: str) -> None:
    """End the command unless a server can listen on ``host:port``.

    Checked before anything starts (uvicorn would load the model, then fail to bind
    with a log line and exit status 3): an interface that does not resolve or is not
    this machine's, and a port in use or not allowed, are reported at once.

    Args:
        host_source, port_source: where each came from, for the message
            (``--host``, ``MLREC_HOST``, ...).
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except UnicodeError:
        fail(f"cannot listen on {shown}: {host!r} ({host_source}) is not a valid host name")
    except OSError as exc:
        fail(
            f"cannot listen on {shown}: the interface {host!r} ({host_source}) is unknown: "
            f"{exc.strerror or exc}"
        )
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            fail(f"cannot listen on {shown} ({host_source}, {port_source}): {exc.strerror or exc}")


def api_address(host: str | None, port: int | None) -> tuple[str, int]:
    """The API's ``(host, port)``: the options, else ``MLREC_HOST``/``MLREC_PORT``;
    checked with :func:`check_listen_address`."""
    from mlrec.services.api.config import get_settings

    config = get_settings()
    address = (config.host if host is None else host, config.port if port is None else port)
    check_listen_address(
        *address,
        host_source="MLREC_HOST" if host is None else "--host",
        port_source="MLREC_PORT" if port is None else "--port",
    )
    return address


def check_api_storage(config: ApiSettings) -> None:
    """End the command if the API could not start on this storage: its directories
    cannot be created, or the metadata database is misconfigured (a bad URL or
    credentials' refusal reads as unreachable too, so a database *server* that does
    not answer is only warned about: the API starts degraded, like a worker restarted
    during an outage, and loads its model once the database answers).

    Failing inside uvicorn, it would log a traceback and exit 3. Here it is one line,
    before the server starts.
    """
    from mlrec.backends.factory import open_model_registry

    for path in (config.data_dir, config.resolved_model_cache_dir):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create the API's directories: {describe_os_error(exc)}")
    database = config.resolved_database_url
    try:
        open_model_registry(database)  # other MlrecErrors: one line from main
    except BackendUnavailableError as exc:
        if database.startswith("sqlite"):
            raise  # a local file that cannot be opened is not an outage
        warn(f"{exc}; starting without a model (popular items) until it answers")


REQUEST_DRAIN_S = 10
"""Seconds ``serve api`` waits, once SIGTERM or SIGINT came, for requests in progress
before it cancels them (the edge answers those 503) and shuts the application down.

Unbounded, one client that never finished sending its body kept the process up until
Kubernetes killed it 30 s later, without the shutdown that commits the embedded
processor's batch and releases its lease. 10 s leaves that shutdown the rest of the
grace period, and exceeds what an event post can take (Kafka's delivery timeout, then
the spool)."""


@serve_app.command("api")
def serve_api(
    host: Annotated[str | None, typer.Option(help="Interface (default MLREC_HOST).")] = None,
    port: PortOption = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (MLREC_WORKERS).")
    ] = None,
) -> None:
    """The recommendation API (FastAPI on uvicorn)."""
    import uvicorn

    from mlrec.services.api.config import get_settings

    config = get_settings()
    listen_host, listen_port = api_address(host, port)
    check_api_storage(config)
    n_workers = config.workers if workers is None else workers
    with ExitStack() as cleanup:
        if n_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # each worker is a process: prometheus_client aggregates them through files,
            # in a directory of this run only (removed when the server stops)
            metrics_dir = cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="mlrec-metrics-")
            )
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            cleanup.callback(os.environ.pop, "PROMETHEUS_MULTIPROC_DIR", None)
        uvicorn.run(
            "mlrec.services.api.app:create_app",
            factory=True,
            host=listen_host,
            port=listen_port,
            workers=n_workers,
            log_level="debug" if config.debug else "info",
            access_log=config.debug,
            timeout_graceful_shutdown=REQUEST_DRAIN_S,
        )


SHUTDOWN_TIMEOUT_S = 10.0
"""Default of ``serve stream --shutdown-timeout``."""


class GracefulShutdown:
    """SIGTERM and SIGINT handling of ``serve stream``: stop cleanly, within a deadline.

    The service runs in a worker thread while the main thread waits in :meth:`wait`,
    so a signal is handled at once even while the worker is blocked in a client
    library (a Kafka commit waits for as long as the broker is down, and Python runs
    a handler only when the main thread returns to the interpreter).

    The first signal asks ``stop`` (the processor finishes, applies and commits the
    batch in flight, then leaves its group) and starts a deadline of ``timeout_s``;
    :meth:`wait` returns False when the worker is still running then. A second signal
    ends the process at once (the default disposition is restored and the signal
    raised again).

    SIGINT is handled like SIGTERM, not as ``KeyboardInterrupt``: an interrupt raised
    anywhere in the loop left the batch in flight applied but uncommitted (delivered
    again at the next start), and a process started with SIGINT ignored (in the
    background of a script) did not stop on Ctrl-C at all.

    Args:
        stop: asks the service to return after the current batch.
        timeout_s: seconds the service may take to stop after the first signal.
        clock: monotonic seconds (tests pass a fake one).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(
        self,
        stop: Callable[[], None],
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stop = stop
        self.timeout_s = timeout_s
        self._clock = clock
        self._previous: dict[signal.Signals, Any] = {}
        self.deadline: float | None = None
        """When the service must have stopped; None until a signal came."""

    def install(self) -> None:
        """Handle SIGTERM and SIGINT (call from the main thread) until :meth:`done`."""
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self.handle)

    def handle(self, signum: int, _frame: FrameType | None = None) -> None:
        """The signal handler."""
        name = signal.Signals(signum).name
        if self.deadline is not None:
            log.warning("%s again: exiting at once", name)
            for other in self.SIGNALS:
                signal.signal(other, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.deadline = self._clock() + self.timeout_s
        log.info(
            "%s: stopping once the batch in flight is applied and committed "
            "(at most %g s; %s again to exit at once)",
            name,
            self.timeout_s,
            name,
        )
        self.stop()

    def wait(self, worker: threading.Thread, poll_s: float = 0.2) -> bool:
        """Wait for ``worker`` to end; False if it still runs past the deadline."""
        while worker.is_alive():
            worker.join(poll_s)  # signals are handled while the main thread waits here
            if self.deadline is not None and self._clock() >= self.deadline:
                return not worker.is_alive()
        return True

    def done(self) -> None:
        """Restore the handlers there were before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def _check_metrics_port(port: int) -> None:
    """End ``serve stream`` at once if ``/metrics`` could not be served on ``port``
    (all interfaces, as ``prometheus_client.start_http_server`` binds): checked before
    connecting to Kafka, which may take its whole timeout to be found unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            fail(f"cannot serve metrics on port {port} (--metrics-port): {exc.strerror or exc}")


def _stop_timed_out(timeout_s: float) -> NoReturn:
    """``serve stream``'s shutdown deadline passed: say so and end the process (status 1)."""
    err_console.print(
        f"[bold red]error:[/] the stream processor did not stop within {timeout_s:g} s "
        "(--shutdown-timeout; is Kafka or the feature store unreachable?): exiting without "
        "committing the batch in flight; its records are delivered again at the next "
        "start and skipped by event id",
        soft_wrap=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


@serve_app.command("stream")
def serve_stream(
    group: Annotated[str, typer.Option(help="Consumer group id.")] = "mlrec-stream",
    metrics_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Prometheus /metrics port.")
    ] = 9101,
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Partitions of mlrec.interactions when it is created, or grown to if it "
            "has fewer (default MLREC_KAFKA_PARTITIONS, 6).",
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most records per poll (a backlog is read in batches this big); at most "
            "half the feature store's dedup window (5000).",
        ),
    ] = 5000,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds SIGTERM/SIGINT wait for the batch in flight to be applied and "
            "committed; past them the process exits anyway (status 1; the batch is "
            "delivered again at the next start and skipped by event id).",
        ),
    ] = SHUTDOWN_TIMEOUT_S,
) -> None:
    """The stream processor: consume mlrec.interactions, update real-time features.

    Run one per partition at most to scale out; they share the consumer group.
    SIGTERM or SIGINT stops it after the batch in flight is applied and committed.
    """
    from prometheus_client import start_http_server

    from mlrec.backends.factory import open_event_log, open_online_store
    from mlrec.core.errors import BackendUnavailableError
    from mlrec.events.log import INTERACTIONS_TOPIC
    from mlrec.events.processor import StreamProcessor, max_redelivery
    from mlrec.features.realtime import RealtimeConfig, RealtimeFeatures
    from mlrec.services.stream import realtime_sink

    if not group.strip():
        fail("--group must name a consumer group, e.g. mlrec-stream")
    # Checked before connecting to anything (Kafka may take 30 s to be found absent).
    window = RealtimeConfig().dedup_window
    if max_redelivery(max_batch) > window:
        fail(
            f"--max-batch {max_batch} is too large: a redelivery re-sends up to two batches, "
            f"and the feature store recognises only each user's latest {window} event ids; "
            f"use at most {window // 2}"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = settings()
    _check_metrics_port(metrics_port)
    online = open_online_store(config.resolved_online_store_url)
    if not online.ping():  # the processor's one job is writing there: fail now, named
        online.close()
        where = redact_url(config.resolved_online_store_url)
        fail(f"the online feature store {where} does not answer (MLREC_REDIS_URL)")
    realtime = RealtimeFeatures(online)
    event_log = open_event_log(
        config.kafka_bootstrap_servers,
        config.data_dir / "events.db",
        config.kafka_partitions if partitions is None else partitions,
    )
    try:
        event_log.ensure_topics()
    except BackendUnavailableError as exc:
        online.close()
        setting = " (MLREC_KAFKA_BOOTSTRAP_SERVERS)" if event_log.is_kafka else ""
        fail(f"{exc}{setting}")

    dead_letters = event_log.producer("mlrec-dlq")
    processor = StreamProcessor(
        event_log.consumer(group, [INTERACTIONS_TOPIC]),
        realtime_sink(realtime),
        dead_letters,
        max_batch=max_batch,
        pipeline=True,
    )
    try:
        start_http_server(metrics_port)
    except OSError as exc:
        processor.consumer.close()
        online.close()
        fail(f"cannot serve metrics on port {metrics_port} (--metrics-port): {exc.strerror or exc}")
    # Everything allocated so far lives for the whole process: keep the collector from
    # rescanning it on every generation-2 pass (doubles throughput on big batches).
    gc.freeze()
    shutdown = GracefulShutdown(processor.stop, shutdown_timeout)
    shutdown.install()
    where = config.kafka_bootstrap_servers or f"embedded log {config.data_dir / 'events.db'}"
    console.print(f"stream processor: group {group} on {where}; metrics on :{metrics_port}")

    def process() -> None:
        # the consumer is used by this thread only, from the first poll to its close
        try:
            processor.run()
        finally:
            processor.consumer.close()
            dead_letters.close()
            online.close()

    worker = threading.Thread(target=process, name="stream-processor", daemon=True)
    worker.start()
    try:
        stopped = shutdown.wait(worker)
    finally:
        shutdown.done()
    if not stopped:
        _stop_timed_out(shutdown_timeout)
    console.print(
        f"applied {processor.stats.applied}, duplicates {processor.stats.duplicates}, "
        f"dead letters {processor.stats.dead_letters}"
    )
