"""A request the server cancels at shutdown is refused cleanly by the edge.

uvicorn cancels the requests still running once ``serve api``'s graceful-shutdown
timeout passed (a client that never finished sending its body); without the edge's
answer, uvicorn logged the ``CancelledError`` with a traceback and sent a 500.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import Message, Receive, Scope, Send

from mlrec.services.api.edge import HttpEdge


def _scope(method: str = "POST", path: str = "/v1/events") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }


async def _cancelled_while_waiting(edge: HttpEdge, scope: Scope) -> list[Message]:
    """What ``edge`` sends when its request is cancelled while the app waits for a
    body that never comes; the task must end normally, not cancelled."""
    sent: list[Message] = []
    waiting = asyncio.Event()

    async def receive() -> Message:
        waiting.set()
        await asyncio.Event().wait()  # the rest of the body never arrives
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.create_task(edge(scope, receive, send))
    await waiting.wait()
    task.cancel()
    await task  # raises CancelledError if the edge let it through
    assert not task.cancelled()
    return sent


async def _reads_the_body(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


def test_a_request_cancelled_before_any_answer_is_refused_with_503_and_close() -> None:
    edge = HttpEdge(_reads_the_body, ["*"], 1 << 20)

    sent = asyncio.run(_cancelled_while_waiting(edge, _scope()))

    start, body = sent
    assert start["status"] == 503
    assert (b"connection", b"close") in start["headers"]
    assert "shutting down" in orjson.loads(body["body"])["detail"]


def test_a_request_cancelled_after_its_answer_started_sends_nothing_more() -> None:
    async def starts_then_waits(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()

    edge = HttpEdge(starts_then_waits, ["*"], 1 << 20)

    sent = asyncio.run(_cancelled_while_waiting(edge, _scope()))

    assert [m["type"] for m in sent] == ["http.response.start"]
