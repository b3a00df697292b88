"""How errors become HTTP answers: mlrec's errors by kind, and 422s that render
whatever the request held.

FastAPI's own 422 echoes each invalid ``input`` back, and Python's JSON parser accepts
what JSON cannot carry back (``NaN``, ``Infinity``, lone surrogates such as
``"\\ud800"``): echoed as is, they turned a 422 into a 500. Echoes are therefore made
JSON-safe, and bounded, so a huge invalid body does not come back whole.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mlrec.core.errors import (
    BackendError,
    BackendUnavailableError,
    MlrecError,
    NotFoundError,
    ValidationError,
)

__all__ = ["error_response", "install_error_handlers", "json_safe", "safe_errors"]

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


def safe_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's error objects, each kept whole (the ``HTTPValidationError`` schema),
    with what they echo (``input``, ``ctx``, ``msg``) made safe by :func:`json_safe`."""
    out = []
    for error in errors:
        error = dict(error)
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
