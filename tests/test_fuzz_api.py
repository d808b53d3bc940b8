"""Schemathesis over real HTTP: requests generated from the app's own OpenAPI schema, sent to a live
server over the indexed samples, and every response held to that schema.

Every operation gets schema-valid requests (positive) and schema-violating ones (negative); across all
of them at least MIN_REQUESTS go out. No response may be a 5xx, carry a status the schema does not
declare, or have a body that does not match what the schema declares for its status; and a request
that violates the schema must be rejected with a 4xx. Generation is derandomized, so CI sends the same
requests every run and a failure reproduces; FUZZ_EXPLORE=N sends N times as many fresh random ones
instead (to look for new failures by hand).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import live_server

MIN_REQUESTS = 1000
EXPLORE = int(os.environ.get("FUZZ_EXPLORE", "0"))
EXAMPLES = {
    mode: n * max(1, EXPLORE) for mode, n in ((GenerationMode.POSITIVE, 150), (GenerationMode.NEGATIVE, 60))
}
CHECKS = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        response_schema_conformance,
        content_type_conformance,
    ],
    GenerationMode.NEGATIVE: [
        not_a_server_error,
        status_code_conformance,
        response_schema_conformance,
        content_type_conformance,
        negative_data_rejection,
    ],
}


@dataclass
class Tally:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def live(samples_db: str, session_home, tiny_clip_dir) -> Iterator[str]:  # noqa: ANN001
    """The server with a (tiny) CLIP installed, so picture searches are fuzzed too; no backfill, so the
    shared samples database gains no visual vectors."""
    with live_server({
        "DATABASE_URL": samples_db,
        "CGCHAT_HOME": str(session_home),
        "LLM_PROVIDER": "none",
        "AUTH_MODE": "off",
        "UI_ENABLED": "false",
        "VISUAL_BACKFILL": "false",
        "CLIP_MODEL_DIR": str(tiny_clip_dir),
    }) as server:
        yield server.base_url


def _fuzz(
    operation: APIOperation, mode: GenerationMode, session: requests.Session, url: str, tally: Tally
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=not EXPLORE,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        response = case.call(base_url=url, session=session, timeout=60)
        tally.requests += 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS[mode])

    try:
        run()
    except Unsatisfiable:  # nothing can violate this operation's schema (no parameters, or free-form strings)
        pass
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - gather every operation's failure
        tally.failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])


def test_generated_requests_get_declared_non_5xx_responses(live: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    tally = Tally()
    started = time.monotonic()
    with requests.Session() as session:
        for operation in operations:
            for mode in EXAMPLES:
                _fuzz(operation, mode, session, live, tally)
    seconds = time.monotonic() - started
    summary = f"{tally.requests} requests in {seconds:.0f} s, statuses {sorted(tally.statuses.items())}"
    print(summary)
    assert not tally.failures, summary + "\n\n" + "\n\n".join(tally.failures)
    assert tally.requests >= MIN_REQUESTS, summary
    assert 200 in tally.statuses and 422 in tally.statuses, (
        summary
    )  # both valid and rejected requests went out
    assert httpx.get(f"{live}/healthz").json()["status"] == "ok"  # and the server is still well


def test_real_resources_conform_to_the_schema(live: str, samples_db: str) -> None:
    """Random ids and session ids mostly miss (404), so the 200 bodies of the by-id routes are checked here
    for every indexed asset and for a real session."""
    import psycopg

    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    checks = CHECKS[GenerationMode.POSITIVE]
    with psycopg.connect(samples_db) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM files ORDER BY id").fetchall()]
    assert len(ids) > 20
    with requests.Session() as session:
        chat = schema["/v1/chat"]["POST"].Case(body={"query": "the dragon turntable videos"})
        reply = chat.call(base_url=live, session=session)
        chat.validate_response(reply, checks=checks)
        cases = [
            schema["/v1/sessions/{session_id}"]["GET"].Case(
                path_parameters={"session_id": reply.json()["session_id"]}
            ),
            schema["/v1/sessions"]["GET"].Case(),
            schema["/v1/config"]["GET"].Case(),
        ]
        for asset_id in ids:
            for path in (
                "/v1/assets/{asset_id}",
                "/v1/assets/{asset_id}/file",
                "/v1/assets/{asset_id}/thumbnail",
            ):
                cases.append(schema[path]["GET"].Case(path_parameters={"asset_id": asset_id}))
        statuses = []
        for case in cases:
            response = case.call(base_url=live, session=session)
            case.validate_response(response, checks=checks)
            statuses.append(response.status_code)
    assert statuses.count(200) > 2 * len(ids)  # every asset and file, most thumbnails
