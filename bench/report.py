"""Writing one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the section that starts with ``heading`` (up to the next '## '), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach figure with its machine, date and command.\n\n"
    start = text.find(heading)
    if start == -1:
        text = text.rstrip() + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + body.rstrip() + "\n\n" + (text[end + 1 :] if end != -1 else "")
    path.write_text(text.rstrip() + "\n")
