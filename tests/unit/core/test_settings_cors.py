"""``MLREC_CORS_ORIGINS`` in the forms users write: an origin that a browser's
``Origin`` header could never equal is refused (or normalised), not silently dead."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mlrec.core import ConfigurationError
from mlrec.core.settings import CommonSettings, load_settings
from mlrec.services.api.edge import HttpEdge


def allowed_origin(origins: list[str], origin: str) -> str | None:
    """The ``access-control-allow-origin`` the API's edge answers ``origin`` with."""
    app = Starlette(routes=[Route("/x", lambda _request: PlainTextResponse("ok"))])
    client = TestClient(HttpEdge(app, origins, 1 << 20))
    return client.get("/x", headers={"Origin": origin}).headers.get("access-control-allow-origin")


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("*", ["*"]),
        ('["*"]', ["*"]),
        ("https://a.example,https://b.example", ["https://a.example", "https://b.example"]),
        ('["https://a.example", "https://b.example"]', ["https://a.example", "https://b.example"]),
        (
            "https://a.example/, HTTPS://B.example:8443",
            ["https://a.example", "https://b.example:8443"],
        ),
    ],
)
def test_cors_origins_in_the_forms_users_write(
    value: str, origins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_CORS_ORIGINS", value)
    assert load_settings(CommonSettings).cors_origins == origins


def test_an_origin_written_with_a_trailing_slash_still_matches_the_browser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLREC_CORS_ORIGINS", "https://app.example/")
    origins = load_settings(CommonSettings).cors_origins
    assert allowed_origin(origins, "https://app.example") == "https://app.example"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://a.example https://b.example", "separate origins with commas, not spaces"),
        ("a.example", "'a.example' is not an origin"),
        ("https://a.example/app", "'https://a.example/app' is not an origin"),
        ('"https://a.example"', "is not an origin"),
        ("['https://a.example']", "not a JSON list of origins"),
        ("[https://a.example]", "not a JSON list of origins"),
    ],
)
def test_an_origin_that_could_never_match_is_refused_naming_the_variable(
    value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_CORS_ORIGINS", value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(CommonSettings)
    message = str(info.value)
    assert "MLREC_CORS_ORIGINS: " in message and problem in message
