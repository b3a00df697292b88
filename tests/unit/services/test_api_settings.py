"""The API's own settings: out-of-range values fail at start, naming the variable."""

from __future__ import annotations

import pytest

from mlrec.core import ConfigurationError
from mlrec.core.settings import load_settings
from mlrec.services.api.config import ApiSettings


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e12", "86401", "0", "1e-300"])
def test_model_poll_seconds_must_be_finite_at_least_a_tenth_and_at_most_a_day(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_MODEL_POLL_SECONDS", value)
    with pytest.raises(ConfigurationError, match="MLREC_MODEL_POLL_SECONDS: "):
        load_settings(ApiSettings)


@pytest.mark.parametrize("value", ["0.5", "86400"])
def test_model_poll_seconds_in_range_is_accepted(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_MODEL_POLL_SECONDS", value)
    assert load_settings(ApiSettings).model_poll_seconds == float(value)


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "1e-300", "0.5"])
def test_event_retention_hours_must_be_finite_at_least_an_hour_and_bounded(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_EVENT_RETENTION_HOURS", value)
    with pytest.raises(ConfigurationError, match="MLREC_EVENT_RETENTION_HOURS: "):
        load_settings(ApiSettings)


def test_a_history_limit_beyond_what_the_feature_store_keeps_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the stores keep a user's 50 most recent items: 60 would read no more than 50
    monkeypatch.setenv("MLREC_HISTORY_LIMIT", "60")
    with pytest.raises(ConfigurationError, match="MLREC_HISTORY_LIMIT: "):
        load_settings(ApiSettings)
    monkeypatch.setenv("MLREC_HISTORY_LIMIT", "50")
    assert load_settings(ApiSettings).history_limit == 50
