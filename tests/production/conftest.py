"""Fixtures for the production-hardening tests: AWS services served by a moto server on loopback."""
import pytest


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server on 127.0.0.1 (S3, Secrets Manager, SNS...): boto3 speaks real HTTP to it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    """Credentials and a region for boto3, every AWS service pointed at the moto server."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "ap-southeast-2", "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """Requests sent straight to the WSGI handler (Zappa's, schemathesis') close old connections when they
    finish, which would close the test's own PostgreSQL connection and its transaction; Django's test
    client disconnects the same receivers while it sends a request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
