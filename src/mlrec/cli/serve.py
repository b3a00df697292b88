"""``mlrec serve``: run the services (API, stream processor)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import tempfile
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated

import typer

from mlrec.cli.common import console, describe_os_error, fail, settings
from mlrec.core.urls import redact_url

if TYPE_CHECKING:
    from mlrec.services.api.config import ApiSettings

serve_app = typer.Typer(help="Run mlrec services.")

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
    cannot be created, or the metadata database cannot be opened (and migrated).

    The API needs both at start-up; failing there, uvicorn logs a traceback and
    exits 3. Here it is one line, before the server starts.
    """
    from mlrec.backends.factory import open_model_registry

    for path in (config.data_dir, config.resolved_model_cache_dir):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create the API's directories: {describe_os_error(exc)}")
    open_model_registry(config.resolved_database_url)  # MlrecError: one line from main


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
        )


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
            help="Partitions of mlrec.interactions when it is created "
            "(default MLREC_KAFKA_PARTITIONS, 6).",
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(min=1, help="Most records per poll (a backlog is read in batches this big)."),
    ] = 5000,
) -> None:
    """The stream processor: consume mlrec.interactions, update real-time features.

    Run one per partition at most to scale out; they share the consumer group.
    """
    from prometheus_client import start_http_server

    from mlrec.backends.factory import open_event_log, open_online_store
    from mlrec.events.log import INTERACTIONS_TOPIC
    from mlrec.events.processor import StreamProcessor
    from mlrec.features.realtime import RealtimeFeatures
    from mlrec.services.stream import realtime_sink

    if not group.strip():
        fail("--group must name a consumer group, e.g. mlrec-stream")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = settings()
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
    event_log.ensure_topics()

    processor = StreamProcessor(
        event_log.consumer(group, [INTERACTIONS_TOPIC]),
        realtime_sink(realtime),
        event_log.producer("mlrec-dlq"),
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
    signal.signal(signal.SIGTERM, lambda *_: processor.stop())
    where = config.kafka_bootstrap_servers or f"embedded log {config.data_dir / 'events.db'}"
    console.print(f"stream processor: group {group} on {where}; metrics on :{metrics_port}")
    try:
        processor.run()
    except KeyboardInterrupt:
        processor.stop()
    finally:
        processor.consumer.close()
        online.close()
        console.print(
            f"applied {processor.stats.applied}, duplicates {processor.stats.duplicates}, "
            f"dead letters {processor.stats.dead_letters}"
        )
