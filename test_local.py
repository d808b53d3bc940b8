"""Run the Lambda handler locally: ``python test_local.py ["question"]``.

Feeds the sample API Gateway REST event (tests/fixtures/apigw/rest_v1_chat.json, ``POST /prod/chat``)
with your question to ``lambda_function.handler``, then prints the answer tokens as they are parsed
from the (buffered) SSE body, and the sources. Uses the normal settings (environment / ``.env``):
without DATABASE_URL that is the embedded Postgres under CGCHAT_HOME (default ~/.cgchat), and
``samples/`` is indexed first if the index is empty. The first run takes a while (Postgres start,
model compile, ingest); later runs are quick.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EVENT = ROOT / "tests" / "fixtures" / "apigw" / "rest_v1_chat.json"
DEFAULT_QUESTION = "Show me Blender files with Cycles renders"


def ensure_index() -> None:
    """Index samples/ when the database has no indexed assets yet."""
    from cgchat.db import migrate
    from cgchat.db.connection import open_connection

    migrate()
    with open_connection() as conn:
        count = conn.execute("SELECT count(*) AS n FROM files WHERE status = 'indexed'").fetchone()["n"]
        if count:
            print(f"index: {count} assets", file=sys.stderr)
            return
        from cgchat.ingest.pipeline import Ingestor
        from cgchat.models.text_encoder import get_text_encoder

        print("index is empty: ingesting samples/ ...", file=sys.stderr)
        report = Ingestor(conn, get_text_encoder()).run([ROOT / "samples"])
        print(f"index: {report.as_dict()}", file=sys.stderr)


def sse_events(raw: str):
    for frame in raw.split("\n\n"):
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            if line and not line.startswith(":") and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if "event" in fields:
            yield fields["event"], json.loads(fields.get("data", "null"))


def main(argv: list[str]) -> int:
    question = " ".join(argv) or DEFAULT_QUESTION
    sys.path.insert(0, str(ROOT))
    import lambda_function

    ensure_index()
    event = json.loads(EVENT.read_text())
    event["body"] = json.dumps({"query": question})
    started = time.perf_counter()
    try:
        response = lambda_function.handler(event, None)
        return report(question, response, time.perf_counter() - started)
    finally:
        lambda_function.shutdown()  # close the pool (a real container just keeps it)


def report(question: str, response: dict, seconds: float) -> int:
    status = response["statusCode"]
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    print(f"Q: {question}\nHTTP {status} ({seconds:.1f} s)\n")
    if status != 200:
        print(body)
        return 1
    sources: list[dict] = []
    for name, data in sse_events(body):
        if name == "sources":
            sources = data["sources"]
        elif name == "token":
            print(data["text"], end="", flush=True)
        elif name == "error":
            print(f"\n[error] {data}")
    print("\n\nSources:")
    for s in sources:
        print(f"  [{s['n']}] {s['name']}  ({s['type']}, score {s['score']:.3f})  {s['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
