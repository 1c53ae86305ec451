"""Parquet panels live in STORAGES["marketdata"]; with a bucket set that is S3 through django-storages.

These tests speak real HTTP to a moto S3 server on loopback, the way production speaks to S3.
"""
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint, monkeypatch, settings_from):
    import boto3
    from storages.backends.s3 import S3Storage

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    config = settings_from(PARAKEET_S3_BUCKET="desk-data", AWS_S3_ENDPOINT_URL=s3_endpoint)["STORAGES"]["marketdata"]
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="desk-data")
    yield S3Storage(**config["OPTIONS"]), client
    for obj in client.list_objects_v2(Bucket="desk-data").get("Contents", []):
        client.delete_object(Bucket="desk-data", Key=obj["Key"])
    client.delete_bucket(Bucket="desk-data")


def _parquet(sessions):
    frame = pd.DataFrame({"date": pd.bdate_range("2024-01-02", periods=sessions).date, "close": 1.0})
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    buf.seek(0)
    return buf


def test_br27_rewriting_a_fixed_key_keeps_one_object(s3_storage):
    """BR-27: writing ohlcv/daily/AAPL/2024.parquet twice (46 then 47 rows) leaves one object of 47 rows."""
    from django.core.files.base import File

    storage, client = s3_storage
    name = "ohlcv/daily/AAPL/2024.parquet"
    assert storage.save(name, File(_parquet(46))) == name
    assert storage.save(name, File(_parquet(47))) == name

    keys = [o["Key"] for o in client.list_objects_v2(Bucket="desk-data")["Contents"]]
    assert keys == ["marketdata/ohlcv/daily/AAPL/2024.parquet"]  # no 2024_abc1234.parquet sibling
    with storage.open(name, "rb") as fh:
        assert pq.read_table(fh).num_rows == 47
    head = client.head_object(Bucket="desk-data", Key=keys[0])
    assert head["ServerSideEncryption"] == "AES256"
