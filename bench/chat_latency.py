"""Chat latency: cold start (process start → first complete answer), first-SSE-event latency, and the
server's resident memory after the requests.

    python bench/chat_latency.py [--requests 50] [--write docs/benchmarks.md]

Starts `cgchat serve` as a real process on a loopback port over the embedded Postgres (the sample
library indexed beforehand, so ingest time is not counted), with the no-LLM provider, then
streams chat requests with httpx and times the first event of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["Show me Blender files rendered with Cycles", "the dragon turntable videos", "brick textures",
             "4K Eevee scenes", "oak tree model", "lighting notes for sh020"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cgchat-bench-"))
    home.chmod(0o755)
    env = {**os.environ, "CGCHAT_HOME": str(home), "LLM_PROVIDER": "none"}
    env.pop("DATABASE_URL", None)
    cgchat = [sys.executable, "-m", "cgchat.cli"]
    try:
        subprocess.run([*cgchat, "ingest", str(REPO / "samples")], env=env, check=True, capture_output=True)
        cold, firsts, rss = _serve_and_measure(cgchat, env, args.requests)
        # The same cold start without the web app (as the Lambda image runs: UI_ENABLED=false).
        cold_no_ui, _, rss_no_ui = _serve_and_measure(cgchat, {**env, "UI_ENABLED": "false"}, args.requests)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    firsts.sort()
    p50, p95 = statistics.median(firsts), firsts[int(len(firsts) * 0.95) - 1]
    body = "\n".join([
        "## Chat latency",
        "",
        f"Date {date.today().isoformat()} · machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, embedded PostgreSQL, no-LLM provider, samples indexed · command: "
        f"`python bench/chat_latency.py --requests {args.requests}`",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| cold start: `cgchat serve` process start → first complete `/v1/chat` answer | {cold:.2f} s | ≤ 3 s |",
        f"| the same with `UI_ENABLED=false` (no Gradio import; the Lambda image) | {cold_no_ui:.2f} s | ≤ 3 s |",
        f"| first SSE event (`meta`) on a warm server, p50 | {p50:.1f} ms | ≤ 100 ms |",
        f"| first SSE event, p95 ({args.requests} sequential requests) | {p95:.1f} ms | ≤ 100 ms |",
        f"| server RSS after the requests (`cgchat serve`; Postgres is its own processes) | {rss / 2**20:.0f} MB "
        "| ≤ 1 GB |",
        f"| the same with `UI_ENABLED=false` | {rss_no_ui / 2**20:.0f} MB | ≤ 1 GB |",
        "",
    ])
    print(body)
    if args.write:
        from report import write_section

        write_section(args.write, "## Chat latency", body)


def _serve_and_measure(cgchat: list[str], env: dict[str, str], requests: int) -> tuple[float, list[float], int]:
    """(seconds from process start to the first complete answer, first-event latencies of ``requests``,
    the server's resident bytes after them)."""
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen([*cgchat, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            _wait_ready(client)
            client.post("/v1/chat", json={"query": QUESTIONS[0]}).raise_for_status()
            cold = time.perf_counter() - started
            firsts = [_first_event_ms(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(requests)]
            rss = _rss_bytes(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return cold, firsts, rss


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _first_event_ms(client: httpx.Client, question: str) -> float:
    start = time.perf_counter()
    first = None
    with client.stream("POST", "/v1/chat/stream", json={"query": question}) as response:
        for line in response.iter_lines():  # read to the end, so the next request starts clean
            if first is None and line.startswith("event:"):
                first = (time.perf_counter() - start) * 1000
    if first is None:
        raise RuntimeError("stream ended without an event")
    return first


def _wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not become ready")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
