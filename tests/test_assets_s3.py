"""Assets that live in S3 are served as a 302 to a presigned URL (moto in server mode on loopback)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer, _create_database, free_port

PAYLOAD = b"\x89PNG\r\n\x1a\n fake texture bytes for the presigned download"


@pytest.fixture(scope="module")
def s3_api(pg_server_url, session_home):  # noqa: ANN001, ANN201
    import boto3
    from moto.server import ThreadedMotoServer

    from cgchat.db import migrate
    from cgchat.db.connection import open_connection
    from cgchat.settings import get_settings

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        mp.delenv(var, raising=False)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "S3_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
           "CGCHAT_HOME": str(session_home), "LLM_PROVIDER": "none"}
    for key, value in env.items():
        mp.setenv(key, value)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    s3.create_bucket(Bucket="studio-assets")
    s3.put_object(Bucket="studio-assets", Key="dragon/tex/dragon scales é.png", Body=PAYLOAD)

    url = _create_database(pg_server_url, "s3_assets")
    migrate(url)
    with open_connection(url) as conn:
        asset_id = conn.execute(
            "INSERT INTO files (path, name, extension, size_bytes, mtime_ns, sha256, mime_type, asset_type,"
            " description, search_tsv) VALUES (%s, %s, 'png', %s, 0, %s, 'image/png', 'image', 'dragon scales',"
            " to_tsvector('english', 'dragon scales')) RETURNING id",
            ("s3://studio-assets/dragon/tex/dragon scales é.png", "dragon scales é.png", len(PAYLOAD), "0" * 64),
        ).fetchone()["id"]
        conn.commit()
    mp.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    with LiveServer() as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client, asset_id, endpoint
    mp.undo()
    get_settings.cache_clear()
    moto.stop()


def test_s3_asset_redirects_to_a_presigned_url(s3_api) -> None:  # noqa: ANN001
    client, asset_id, endpoint = s3_api
    r = client.get(f"/v1/assets/{asset_id}/file")
    assert r.status_code == 302 and r.headers["cache-control"] == "no-store"
    location = r.headers["location"]
    assert location.startswith(f"{endpoint}/studio-assets/dragon/tex/") and "X-Amz-Signature=" in location
    assert "X-Amz-Expires=300" in location
    download = httpx.get(location, timeout=10)
    assert download.status_code == 200 and download.content == PAYLOAD
    assert "dragon%20scales%20%C3%A9.png" in download.headers["content-disposition"]
    thumb = client.get(f"/v1/assets/{asset_id}/thumbnail")
    assert thumb.status_code == 302 and httpx.get(thumb.headers["location"], timeout=10).content == PAYLOAD


def test_tampered_presigned_url_is_refused(s3_api) -> None:  # noqa: ANN001
    client, asset_id, _ = s3_api
    location = client.get(f"/v1/assets/{asset_id}/file").headers["location"]
    other_key = location.replace("dragon/tex/", "dragon/secret/", 1)
    assert httpx.get(other_key, timeout=10).status_code == 403


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "/local/path", "http://x/y"])
def test_bad_s3_uris_are_rejected(uri: str) -> None:
    from cgchat.services.s3 import parse_s3_uri

    with pytest.raises(ValueError):
        parse_s3_uri(uri)
