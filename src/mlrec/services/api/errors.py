"""How errors become HTTP answers: mlrec's errors by kind, and 422s that render
whatever the request held.

FastAPI's own 422 echoes each invalid ``input`` back, and Python's JSON parser accepts
what JSON cannot carry back (``NaN``, ``Infinity``, lone surrogates such as
``"\\ud800"``): echoed as is, they turned a 422 into a 500. Echoes are therefore made
JSON-safe, and bounded, so a huge invalid body does not come back whole.

Bodies FastAPI cannot read as JSON are answered the way a client can act on
(:class:`JsonBodyRoute`): 415 for a body not sent as JSON, a 422 ``json_invalid`` for
one that is not UTF-8 or nests too deeply.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlrec.core.errors import (
    BackendError,
    BackendUnavailableError,
    MlrecError,
    NotFoundError,
    ValidationError,
)
from mlrec.core.ids import ENTITY_ID_PATTERN, entity_id_problem

__all__ = [
    "JsonBodyRoute",
    "error_response",
    "install_error_handlers",
    "json_safe",
    "safe_errors",
]

MAX_ECHO_CHARS = 200
"""Longest string echoed in a 422; longer ones are cut (the cut is marked)."""
MAX_ECHO_ITEMS = 20
"""Most items of a list or object echoed in a 422 (the number left out is said)."""


def error_response(status: int, message: str) -> JSONResponse:
    """``{"detail": message}`` with ``status``."""
    return JSONResponse({"detail": message}, status_code=status)


def _safe_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: show them escaped
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_ECHO_CHARS:
        return f"{text[:MAX_ECHO_CHARS]}... ({len(text)} characters)"
    return text


def json_safe(value: Any) -> Any:
    """``value`` (already JSON-like) with non-finite floats as strings (``"nan"``),
    strings UTF-8 encodable and at most :data:`MAX_ECHO_CHARS`, lists and objects at
    most :data:`MAX_ECHO_ITEMS` items."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, list | tuple):
        items = [json_safe(item) for item in value[:MAX_ECHO_ITEMS]]
        if len(value) > MAX_ECHO_ITEMS:
            items.append(f"... {len(value) - MAX_ECHO_ITEMS} more items")
        return items
    if isinstance(value, dict):
        out = {
            _safe_text(str(key)): json_safe(item)
            for key, item in list(value.items())[:MAX_ECHO_ITEMS]
        }
        if len(value) > MAX_ECHO_ITEMS:
            out["..."] = f"{len(value) - MAX_ECHO_ITEMS} more keys"
        return out
    return value


def _entity_id_message(error: dict[str, Any]) -> str | None:
    """What is wrong with an id that failed the id pattern, in words (the pattern's
    own message shows a regular expression of escapes)."""
    ctx = error.get("ctx")
    if (
        error.get("type") != "string_pattern_mismatch"
        or not isinstance(ctx, dict)
        or ctx.get("pattern") != ENTITY_ID_PATTERN
    ):
        return None
    return entity_id_problem(error.get("input"))


def safe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's error objects, each kept whole (the ``HTTPValidationError`` schema),
    with what they echo (``input``, ``ctx``, ``msg``) made safe by :func:`json_safe`.

    An id refused by the id pattern is explained in words (whitespace, control
    characters) rather than by the pattern, which stays in ``ctx``."""
    out = []
    for error in errors:
        error = dict(error)
        if (message := _entity_id_message(error)) is not None:
            error["msg"] = message
        for key in ("input", "ctx", "msg"):
            if key in error:
                error[key] = json_safe(error[key])
        out.append(error)
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Map mlrec's errors and request validation errors to HTTP answers."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": safe_errors(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(BackendUnavailableError)
    async def unavailable(_: Request, exc: BackendUnavailableError) -> JSONResponse:
        return error_response(503, f"dependency unavailable: {exc}")

    @app.exception_handler(BackendError)
    async def backend_refused(_: Request, exc: BackendError) -> JSONResponse:
        # reachable but refusing (e.g. Kafka denies the topic): not the client's fault
        return error_response(502, f"dependency refused the request: {exc}")

    @app.exception_handler(MlrecError)
    async def other(_: Request, exc: MlrecError) -> JSONResponse:
        return error_response(400, str(exc))


def _is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters aside (the
    media types FastAPI parses as JSON)."""
    media = content_type.partition(";")[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _unreadable_json(cause: BaseException | None) -> dict[str, Any] | None:
    """The 422 error object of a body that could not be parsed for ``cause``, if it is
    one a client can fix (FastAPI reports both as a bare 400)."""
    if isinstance(cause, UnicodeDecodeError):
        return {
            "type": "json_invalid",
            "loc": ("body", cause.start),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {
                "error": f"not valid {cause.encoding.upper()} at byte {cause.start}: "
                "send JSON as UTF-8"
            },
        }
    if isinstance(cause, RecursionError):
        return {
            "type": "json_invalid",
            "loc": ("body",),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "arrays or objects nested too deeply"},
        }
    return None


class JsonBodyRoute(APIRoute):
    """A route whose JSON body problems get answers a client can act on.

    FastAPI (with its default ``strict_content_type``) hands a body sent without a
    JSON content type to validation as a string, whose 422 (``Input should be a valid
    dictionary``, echoing the body) hides the cause: here it is a 415 naming the
    expected type, as for any body a JSON API cannot take (``curl -d`` without ``-H
    'content-type: application/json'`` sends form data). A JSON body that is not
    UTF-8, or nests too deeply for the parser, is FastAPI's 422 ``json_invalid`` with
    the reason, as other unparsable JSON is, instead of a bare 400.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def json_body_handler(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if not (content_type and _is_json(content_type)) and await request.body():
                sent = f"content-type {content_type!r}" if content_type else "no content-type"
                raise HTTPException(
                    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    f"send the body as JSON with content-type: application/json ({sent})",
                )
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # what FastAPI raises for a body
                error = _unreadable_json(exc.__cause__) if exc.status_code == 400 else None
                if error is None:
                    raise
                raise RequestValidationError([error]) from exc

        return json_body_handler
