"""Ingest throughput: the sample library replicated N times, cold (empty database) then warm (no change).

    python bench/ingest.py [--copies 160] [--write docs/benchmarks.md]

Runs the real pipeline (extract, describe, embed, one transaction per file) into a fresh
database on the embedded Postgres. Copies get distinct folder names, so every file is a new
asset with its own path, hash work and embedding.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=160)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from workspace import embedded_workdir, replicate_samples

    work = embedded_workdir()
    os.environ.pop("DATABASE_URL", None)

    from cgchat.db import migrate
    from cgchat.db.connection import open_connection
    from cgchat.ingest.pipeline import Ingestor
    from cgchat.models.text_encoder import get_text_encoder

    library = work / "library"
    n_files = replicate_samples(library, args.copies)
    encoder = get_text_encoder()
    migrate()
    with open_connection() as conn:  # the work folder goes at exit (workspace.embedded_workdir)
        t = time.perf_counter()
        cold = Ingestor(conn, encoder).run([library])
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = Ingestor(conn, encoder).run([library])
        warm_s = time.perf_counter() - t
    assert not cold.skipped and warm.unchanged == n_files, (cold.as_dict(), warm.as_dict())

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, embedded PostgreSQL 16"
    body = "\n".join([
        "## Ingest",
        "",
        f"Date {date.today().isoformat()} · machine: {machine} · library: samples/ × {args.copies} = {n_files} files "
        f"(.blend, EXR, PNG/JPEG, MP4/MOV, glTF/OBJ/FBX/USD, text) · command: `python bench/ingest.py --copies {args.copies}`",
        "",
        "| run | files | seconds | files/s |",
        "|---|---|---|---|",
        f"| cold (empty database: extract + embed + write) | {n_files} | {cold_s:.1f} | {n_files / cold_s:.0f} |",
        f"| warm (nothing changed: one stat per file) | {n_files} | {warm_s:.2f} | {n_files / warm_s:.0f} |",
        "",
    ])
    print(body)
    if args.write:
        from report import write_section

        write_section(args.write, "## Ingest", body)


if __name__ == "__main__":
    main()
