"""PARAKEET_SECRETS_ARN: SECRET_KEY, DATABASE_URL and TIINGO_API_KEY from AWS Secrets Manager (moto on loopback)."""
import json
import logging

import boto3
import pytest
from django.core.exceptions import ImproperlyConfigured

SECRET = {
    "SECRET_KEY": "s3cr3t-" + "k" * 60,
    "DATABASE_URL": "postgres://desk:pa55word@ep-quiet-sun-123456-pooler.ap-southeast-2.aws.neon.tech/desk?sslmode=require",
    "TIINGO_API_KEY": "tiingo-token-0123456789abcdef",
}


@pytest.fixture
def secret_arn(aws):
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="parakeet/test", SecretString=json.dumps(SECRET))["ARN"]
    yield arn
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_production_takes_its_secrets_from_secrets_manager(settings_from, secret_arn):
    s = settings_from("prod", PARAKEET_SECRETS_ARN=secret_arn)
    assert s["SECRET_KEY"] == SECRET["SECRET_KEY"]
    assert s["TIINGO_API_KEY"] == SECRET["TIINGO_API_KEY"]
    db = s["DATABASES"]["default"]
    assert (db["HOST"], db["USER"], db["PASSWORD"], db["NAME"]) == (
        "ep-quiet-sun-123456-pooler.ap-southeast-2.aws.neon.tech", "desk", "pa55word", "desk")
    assert db["OPTIONS"]["sslmode"] == "require"
    # Neon's pooled endpoint (-pooler.) is PgBouncer in transaction mode: no server-side cursors, no
    # prepared statements; the connection is still reused and health-checked.
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True and db["OPTIONS"]["prepare_threshold"] is None
    assert db["CONN_HEALTH_CHECKS"] is True and db["OPTIONS"]["connect_timeout"] == 10


def test_the_secrets_never_enter_the_environment(settings_from, secret_arn):
    import os

    settings_from("prod", PARAKEET_SECRETS_ARN=secret_arn)
    assert not any(value in os.environ.values() for value in SECRET.values())


def test_an_environment_variable_wins_over_the_secret(settings_from, secret_arn):
    s = settings_from("prod", PARAKEET_SECRETS_ARN=secret_arn, TIINGO_API_KEY="from-env")
    assert s["TIINGO_API_KEY"] == "from-env"
    assert s["SECRET_KEY"] == SECRET["SECRET_KEY"]


def test_a_missing_secret_stops_the_boot_naming_it_but_no_value(settings_from, aws):
    arn = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:parakeet/nope-AbCdEf"
    with pytest.raises(ImproperlyConfigured, match="PARAKEET_SECRETS_ARN: cannot read secret .*parakeet/nope"):
        settings_from("prod", PARAKEET_SECRETS_ARN=arn)


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON object of strings"),
    (json.dumps({"SECRET_KEY": 42}), "not a JSON object of strings"),
    (json.dumps({"SECRETKEY": "x" * 60}), r"unknown keys \['SECRETKEY'\]"),
])
def test_a_malformed_secret_stops_the_boot(settings_from, aws, content, message):
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="parakeet/bad", SecretString=content)["ARN"]
    try:
        with pytest.raises(ImproperlyConfigured, match=message) as error:
            settings_from("prod", PARAKEET_SECRETS_ARN=arn)
        assert "x" * 60 not in str(error.value)
    finally:
        client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_nothing_secret_reaches_the_logs_or_the_error_page(client, settings, caplog, alice_read):
    """A request that fails with the secrets loaded: the 500 page and the log lines name none of them."""
    from django.test import override_settings

    settings.SECRET_KEY = SECRET["SECRET_KEY"]
    settings.TIINGO_API_KEY = SECRET["TIINGO_API_KEY"]
    client.raise_request_exception = False
    with override_settings(ROOT_URLCONF="tests.production.failing_urls"), caplog.at_level(logging.INFO):
        response = client.get("/boom", HTTP_AUTHORIZATION=f"Bearer {alice_read}")
    assert response.status_code == 500
    page = response.content.decode()
    logged = "\n".join(caplog.messages) + "\n".join(str(r.exc_info) for r in caplog.records)
    for value in (*SECRET.values(), "pa55word", alice_read):
        assert value not in page and value not in logged
    assert "Traceback" not in page  # DEBUG is off: the plain 500 page
