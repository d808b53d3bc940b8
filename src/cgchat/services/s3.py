"""Assets stored in S3 (``s3://bucket/key`` paths): served as short-lived presigned GET URLs, so file
bytes go from S3 to the client directly instead of through Lambda's 6 MB response limit."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any
from urllib.parse import quote


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """("bucket", "key") of ``s3://bucket/key``; ValueError for anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ValueError(f"s3 URI needs a bucket and a key: {uri!r}")
    return bucket, key


# What S3 answers for an object (or version) that is not there (any more): "404" is what a HEAD gets.
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404"})


def error_code(exc: Exception) -> str | None:
    """The S3 error code of a botocore ClientError (None for anything else)."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


class S3Files:
    def __init__(self, region: str, endpoint_url: str | None = None, expires_s: int = 300):
        self.region = region
        self.endpoint_url = endpoint_url
        self.expires_s = expires_s
        self._lock = threading.Lock()

    @cached_property
    def client(self) -> Any:
        import boto3  # deferred: only deployments with S3 assets need it
        from botocore.config import Config

        with self._lock:
            return boto3.session.Session().client(
                "s3", region_name=self.region, endpoint_url=self.endpoint_url,
                config=Config(signature_version="s3v4", retries={"mode": "standard"}),
            )

    def presigned_get(self, uri: str, filename: str) -> str:
        bucket, key = parse_s3_uri(uri)
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key,
                    "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
            ExpiresIn=self.expires_s,
        )
