"""Build the installable add-on: dist/cgchat_blender.zip with the package folder cgchat_blender/ inside,
as Blender's Preferences > Add-ons > Install expects. Plain Python (stdlib only), any version >= 3.8.

    python blender_addon/build_zip.py [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "cgchat_blender"
DEFAULT_OUT = HERE.parent / "dist" / "cgchat_blender.zip"
FIXED_TIME = (2024, 1, 1, 0, 0, 0)  # same bytes from the same sources


def package_files() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo")
        and not p.name.startswith(".")
    )


def build(out: Path = DEFAULT_OUT) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in package_files():
            info = zipfile.ZipInfo(f"{PACKAGE.name}/{path.relative_to(PACKAGE).as_posix()}", FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"zip to write (default {DEFAULT_OUT})")
    out = build(parser.parse_args(argv).out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
