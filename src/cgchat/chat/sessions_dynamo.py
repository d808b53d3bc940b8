"""Chat sessions in DynamoDB (SESSION_STORE=dynamodb), for the serverless deployment.

One table, two item kinds under one partition per session:
  pk = "SESSION#<id>", sk = "META"                       owner, title, created_at, updated_at, expires_at
  pk = "SESSION#<id>", sk = "MSG#<iso time>#<msg id>"    the message (sources/citations as JSON strings)
A global secondary index ``owner-updated`` (owner, updated_at) lists a user's sessions, newest first;
``expires_at`` is the table's TTL attribute, so abandoned sessions age out without a sweeper.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cgchat.chat.sessions import SessionNotFound, StoredMessage

OWNER_INDEX = "owner-updated"


class DynamoSessions:
    def __init__(self, table_name: str, region: str, endpoint_url: str | None = None, ttl_days: int = 90,
                 resource: Any = None):
        import boto3  # deferred: only the serverless deployment needs it

        self.table = (resource or boto3.resource("dynamodb", region_name=region, endpoint_url=endpoint_url)).Table(table_name)
        self.ttl_seconds = ttl_days * 86400

    def open(self, owner: str, session_id: str | None, title: str) -> str:
        if session_id is None:
            new_id = str(uuid.uuid4())
            now = _now()
            self.table.put_item(Item={
                "pk": _pk(new_id), "sk": "META", "owner": owner, "title": title[:120], "created_at": now,
                "updated_at": now, "expires_at": int(time.time()) + self.ttl_seconds,
            })
            return new_id
        self._meta(owner, session_id)
        return session_id

    def history(self, owner: str, session_id: str) -> list[StoredMessage]:
        self._meta(owner, session_id)
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
            "ExpressionAttributeValues": {":pk": _pk(session_id), ":msg": "MSG#"},
        }
        while True:
            page = self.table.query(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [_message(item) for item in items]

    def append(self, session_id: str, *messages: StoredMessage) -> None:
        with self.table.batch_writer() as batch:
            for i, m in enumerate(messages):
                stamp = _now()
                batch.put_item(Item={
                    "pk": _pk(session_id), "sk": f"MSG#{stamp}#{i:02d}#{m.id}", "id": m.id, "role": m.role,
                    "content": m.content, "standalone_query": m.standalone_query or "",
                    "sources": json.dumps(m.sources), "citations": json.dumps(m.citations),
                    "provider": m.provider or "", "model": m.model or "", "finish_reason": m.finish_reason or "",
                    "created_at": stamp,
                })
        self.table.update_item(
            Key={"pk": _pk(session_id), "sk": "META"}, UpdateExpression="SET updated_at = :u, expires_at = :e",
            ExpressionAttributeValues={":u": _now(), ":e": int(time.time()) + self.ttl_seconds},
        )

    def list(self, owner: str, limit: int = 50) -> list[dict[str, Any]]:
        page = self.table.query(
            IndexName=OWNER_INDEX, KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": owner}, ScanIndexForward=False, Limit=limit,
        )
        return [{"id": i["pk"].removeprefix("SESSION#"), "title": i.get("title", ""), "created_at": i["created_at"],
                 "updated_at": i["updated_at"]} for i in page["Items"]]

    def delete(self, owner: str, session_id: str) -> None:
        self._meta(owner, session_id)
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in self._all_items(session_id)]
        with self.table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)

    def _all_items(self, session_id: str) -> list[dict[str, Any]]:
        items, kwargs = [], {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": _pk(session_id)},
                             "ProjectionExpression": "pk, sk"}
        while True:
            page = self.table.query(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _meta(self, owner: str, session_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(session_id)
        except ValueError as exc:
            raise SessionNotFound(session_id) from exc
        item = self.table.get_item(Key={"pk": _pk(session_id), "sk": "META"}, ConsistentRead=True).get("Item")
        if item is None or item.get("owner") != owner:
            raise SessionNotFound(session_id)
        return item


def table_definition(table_name: str) -> dict[str, Any]:
    """The CreateTable request this store expects (tests and IaC use the same shape)."""
    return {
        "TableName": table_name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"}, {"AttributeName": "updated_at", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [{
            "IndexName": OWNER_INDEX,
            "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "updated_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["title", "created_at"]},
        }],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _pk(session_id: str) -> str:
    return f"SESSION#{session_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _message(item: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        id=item["id"], role=item["role"], content=item["content"], standalone_query=item.get("standalone_query") or None,
        sources=json.loads(item.get("sources") or "[]"), citations=json.loads(item.get("citations") or "[]"),
        provider=item.get("provider") or None, model=item.get("model") or None,
        finish_reason=item.get("finish_reason") or None, created_at=item.get("created_at"),
    )
