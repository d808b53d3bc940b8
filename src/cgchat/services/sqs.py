"""The SQS client of the ingestion queue and its dead-letter queue (the worker and `cgchat enqueue`)."""

from __future__ import annotations

from typing import Any

from cgchat.settings import Settings


def sqs_client(settings: Settings) -> Any:
    import boto3  # deferred: only S3 ingestion needs it

    return boto3.client("sqs", region_name=settings.aws_region, endpoint_url=settings.sqs_endpoint_url)
