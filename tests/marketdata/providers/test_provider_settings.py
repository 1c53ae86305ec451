"""Provider settings are read strictly: nonsense stops the boot naming the variable."""
import re

import pytest
from django.core.exceptions import ImproperlyConfigured


def test_defaults_point_at_the_real_providers(settings_from):
    config = settings_from()

    assert config["PROVIDER_URLS"] == {"tiingo": "https://api.tiingo.com",
                                       "yahoo": "https://query1.finance.yahoo.com", "stooq": "https://stooq.com"}
    assert (config["PROVIDER_RATE"], config["PROVIDER_RETRIES"], config["PROVIDER_TIMEOUT"]) == (5.0, 3, 30.0)


def test_a_local_server_and_no_rate_limit_are_accepted(settings_from):
    config = settings_from(PARAKEET_YAHOO_URL="http://127.0.0.1:8765/", PARAKEET_PROVIDER_RATE="0")

    assert (config["PROVIDER_URLS"]["yahoo"], config["PROVIDER_RATE"]) == ("http://127.0.0.1:8765", 0.0)


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("PARAKEET_TIINGO_URL", "ftp://api.tiingo.com", "is not an http(s) URL"),
    ("PARAKEET_PROVIDER_RATE", "fast", "Not a valid number"),
    ("PARAKEET_PROVIDER_RATE", "-1", "must be >= 0"),
    ("PARAKEET_PROVIDER_RETRIES", "-2", "must be >= 0"),
    ("PARAKEET_PROVIDER_TIMEOUT", "0", "must be >= 0.1"),
])
def test_nonsense_is_refused_naming_the_variable(settings_from, monkeypatch, name, value, problem):
    monkeypatch.setenv(name, value)

    with pytest.raises(ImproperlyConfigured, match=rf"environment variable {name}: .*{re.escape(problem)}"):
        settings_from()
