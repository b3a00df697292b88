"""The API's HTTP edge, one pure ASGI middleware: request size limit, timing, CORS,
HEAD."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import Histogram
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlrec.services.api.routes import recommendations

__all__ = ["REQUEST_SECONDS", "HttpEdge"]

REQUEST_SECONDS = Histogram(
    "mlrec_api_request_duration_seconds",
    "HTTP request latency by route.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

_VARY_ORIGIN = (b"vary", b"Origin")


class HttpEdge:
    """Pure ASGI middleware: request body size limit, timing by route and status, CORS.

    A body larger than ``max_body_bytes`` is answered 413 before the app reads it
    (by its ``Content-Length``, or while it streams in when it has none), so one huge
    request cannot hold the event loop while it is parsed and validated. Such a 413
    is timed under the template of the first of ``routes`` the request matches.

    Only requests that carry an ``Origin`` header (browsers, cross-origin) go through
    Starlette's ``CORSMiddleware``; the others, the bulk of service-to-service
    traffic, just get the ``Vary: Origin`` it would add, from the one ``send`` wrapper
    that also records the status (a profile of the hot route showed the CORS wrapper's
    header rewriting on every response). Starlette's ``BaseHTTPMiddleware`` would
    cost far more.
    """

    def __init__(
        self,
        app: ASGIApp,
        cors_origins: list[str],
        max_body_bytes: int,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.routes = routes
        self.cors = CORSMiddleware(
            app, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
        # a browser can read a 413 only with the CORS headers it would get otherwise
        self.cors_too_large = CORSMiddleware(
            self._too_large, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
        self.cors_bad_path = CORSMiddleware(
            self._bad_path, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
        # bounded: route templates (not raw paths) x methods x statuses
        self._timers: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        responded = False
        cross_origin = any(name == b"origin" for name, _ in scope["headers"])
        method = scope["method"]
        if method == "HEAD":
            scope = {**scope, "method": "GET"}  # a copy: the server keeps its own
            send = _without_body(send)

        async def send_and_record(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                if status == 405:
                    message = _allowing_head(message)
                if not cross_origin:  # a copy: the response may reuse its header list
                    message = {**message, "headers": [*message.get("headers", ()), _VARY_ORIGIN]}
            await send(message)

        route = user_id = None
        direct = False
        try:
            if "\ufffd" in scope["path"] and not _utf8_path(scope):
                answer = self.cors_bad_path if cross_origin else self._bad_path
                await answer(scope, receive, send_and_record)
                return
            if scope["method"] in _BODY_METHODS:
                bounded = await self._bounded_body(scope, receive)
                if bounded is None:
                    status = 413
                    answer = self.cors_too_large if cross_origin else self._too_large
                    await answer(scope, receive, send_and_record)
                    return
                receive = bounded
            user_id = None if cross_origin else recommendations.direct_user_id(scope)
            direct = user_id is not None  # sends unrecorded while it answers
            if user_id is not None and await recommendations.answer_directly(
                scope, send, user_id, [_VARY_ORIGIN]
            ):
                route, status = recommendations.USER_ROUTE, 200
            else:
                direct = False
                await (self.cors if cross_origin else self.app)(scope, receive, send_and_record)
        except asyncio.CancelledError:
            # The server is shutting down and gave up waiting for this request (a
            # client that never sent its whole body, say): refuse it, and end the task
            # normally, which uvicorn would otherwise log as an error with a traceback.
            if not responded and not direct:
                status = 503
                await _send_error(
                    send,
                    503,
                    "the server is shutting down: retry the request",
                    [(b"connection", b"close")],
                )
        finally:
            if route is None:
                # a hot-route request that failed before the app routed it is still
                # that route's (a 500 from answer_directly, say)
                fallback = "unmatched" if user_id is None else recommendations.USER_ROUTE
                route = getattr(scope.get("route"), "path", fallback)
                if status == 413 and route == "unmatched":  # refused before routing
                    route = self._template(scope)
            key = (method, route, status)
            timer = self._timers.get(key)
            if timer is None:  # label lookups cost more than the observation: cache them
                timer = self._timers[key] = REQUEST_SECONDS.labels(key[0], key[1], str(status))
            timer.observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        """The template of the first route ``scope``'s path and method match, if any."""
        for candidate in self.routes:
            if isinstance(candidate, Route) and candidate.matches(scope)[0] is Match.FULL:
                return candidate.path
        return "unmatched"

    async def _bounded_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """``receive`` if the body is within the limit (None if not). A body without a
        ``Content-Length`` is read here, up to the limit, and replayed to the app."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return receive if int(value) <= self.max_body_bytes else None
                except ValueError:
                    return receive  # the server refuses a malformed length itself
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        return replay

    async def _too_large(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await _send_too_large(send, self.max_body_bytes)

    async def _bad_path(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await _send_error(send, 400, "the URL path is not UTF-8 once percent-decoded")


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _without_body(send: Send) -> Send:
    """``send`` for a ``HEAD`` answered as ``GET``: the headers (``Content-Length``
    included, as RFC 9110 allows), no body."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


def _allowing_head(message: Message) -> Message:
    """A 405's start message with ``HEAD`` in ``Allow`` wherever ``GET`` is."""
    headers = []
    for name, value in message.get("headers", ()):
        if name.lower() == b"allow":
            methods = [m.strip() for m in value.split(b",")]
            if b"GET" in methods and b"HEAD" not in methods:
                value = b", ".join([*methods, b"HEAD"])
        headers.append((name, value))
    return {**message, "headers": headers}


def _utf8_path(scope: Scope) -> bool:
    """Whether the request's path, percent-decoded, is UTF-8 (true without a raw path)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return True
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _send_too_large(send: Send, limit: int) -> None:
    detail = (
        f"request body too large: at most {limit} bytes "
        "(MLREC_MAX_REQUEST_BYTES); send large batches in several requests"
    )
    await _send_error(send, 413, detail, [(b"connection", b"close")])


async def _send_error(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """``{"detail": detail}`` with ``status``, as the app's error answers."""
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
