#!/usr/bin/env bash
# Regenerate docs/screenshots/blender-addon.png: the Blender add-on in Blender's real UI.
#
#   scripts/screenshots/blender_addon.sh [OUT.png]      (default docs/screenshots/blender-addon.png)
#
# Needs: Debian's blender (3.4+), xvfb-run (apt-get install xvfb xauth; Mesa's llvmpipe gives the
# OpenGL 3.3 Blender needs, no GPU or display required) and the project's .venv (make install).
# Starts `cgchat serve` on the repository's samples/ in a temporary CGCHAT_HOME (PORT, default 8799),
# builds the add-on zip, runs scripts/screenshots/blender_addon.py in Blender with a window under
# Xvfb (temporary Blender user folders: nothing reaches this machine's Blender configuration),
# shrinks the PNG (256 colours, Pillow from .venv), then stops everything and removes the temp files.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/docs/screenshots/blender-addon.png}")"
PORT="${PORT:-8799}"
VENV="${VENV:-$ROOT/.venv}"
BLENDER="${BLENDER:-blender}"

for tool in "$BLENDER" xvfb-run curl "$VENV/bin/cgchat" "$VENV/bin/python"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

WORK="$(mktemp -d /tmp/cgchat-screenshot.XXXXXX)"
chmod 755 "$WORK"  # as root, pgserver runs PostgreSQL as another user: the home must be traversable
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true  # graceful: it stops its embedded PostgreSQL
        for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "starting cgchat serve on 127.0.0.1:$PORT (log: $WORK/server.log)"
(
    cd "$WORK"  # no stray .env
    unset DATABASE_URL
    exec env CGCHAT_HOME="$WORK/home" LLM_PROVIDER=none AUTH_MODE=off UI_ENABLED=false \
        "$VENV/bin/cgchat" serve --ingest "$ROOT/samples" --port "$PORT"
) >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "the server died" >&2; exit 1; }
    sleep 1
done
curl -fs "http://127.0.0.1:$PORT/healthz" || { tail -30 "$WORK/server.log" >&2; exit 1; }
echo

"$VENV/bin/python" "$ROOT/blender_addon/build_zip.py" --out "$WORK/cgchat_blender.zip"

mkdir -p "$WORK/blender-scripts" "$WORK/blender-config" "$(dirname "$OUT")"
BLENDER_USER_SCRIPTS="$WORK/blender-scripts" BLENDER_USER_CONFIG="$WORK/blender-config" \
    xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$BLENDER" --factory-startup --enable-event-simulate -p 0 0 1600 1000 \
    --python "$ROOT/scripts/screenshots/blender_addon.py" -- \
    --server "http://127.0.0.1:$PORT" --zip "$WORK/cgchat_blender.zip" --out "$WORK/shot.png" \
    2>&1 | tee "$WORK/blender.log" | grep -v "Draw window and swap"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "Blender failed" >&2; exit 1; }

"$VENV/bin/python" - "$WORK/shot.png" "$OUT" <<'PY'
import os, sys
from PIL import Image

src, out = sys.argv[1:3]
image = Image.open(src).convert("RGB")
image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
print(f"{out}: {image.width}x{image.height}, {os.path.getsize(out) // 1024} KiB")
PY
