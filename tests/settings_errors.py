"""Shared check of settings errors: a bad value fails at load, naming the variable."""

from __future__ import annotations

import pytest

from mlrec.core import ConfigurationError
from mlrec.core.settings import CommonSettings, load_settings


def refused(
    variable: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: type[CommonSettings] = CommonSettings,
) -> str:
    """Set ``variable`` to ``value``; loading ``settings`` must fail naming it, in words
    (no pydantic prefix) and without the password ``s3cret`` the tests put in URLs.
    Returns the message."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(settings)
    message = str(info.value)
    assert f"{variable}: " in message
    assert "Value error" not in message  # pydantic's prefix says nothing to a user
    assert "s3cret" not in message
    return message
