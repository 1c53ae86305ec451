"""The one exception handler: Django validation errors become 422s in ninja's own shape."""
import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.probe_urls")]


def test_a_django_field_error_is_422_naming_each_field(alice_client):
    response = alice_client.get("/probe/invalid?kind=field")
    assert response.status_code == 422
    assert response.json() == {"detail": [
        {"type": "value_error", "loc": ["quantity"], "msg": "must be positive"},
        {"type": "value_error", "loc": ["entry_date"], "msg": "is a weekend"},
    ]}


def test_a_django_non_field_error_is_422_with_an_empty_loc(alice_client):
    response = alice_client.get("/probe/invalid?kind=other")
    assert response.status_code == 422
    assert response.json() == {"detail": [{"type": "value_error", "loc": [], "msg": "exit before entry"}]}
