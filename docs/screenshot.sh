#!/usr/bin/env bash
# Reproduces docs/prefect-report.png: the "mnist-report" artifact of one pipeline run, as the
# Prefect UI shows it in a real browser.
#
#   docs/screenshot.sh [FASHION_MNIST_DIR] [OUTPUT_PNG]
#
# Starts a throw-away Prefect server (its own PREFECT_HOME, a free loopback port), runs the
# pipeline on Fashion-MNIST read from FASHION_MNIST_DIR (default ../shared/data/fashion-mnist
# beside the checkout) reporting to that server, screenshots the artifact page with headless
# chromium (Debian's `chromium` package) and stores it as a small palette PNG with Pillow.
# The run is the default `mnist-flow run` on the complete dataset (what a user runs), so the
# report shows real figures. Everything it writes except OUTPUT_PNG lives in a temporary folder
# removed at exit, and the server is stopped even if a step fails. A few minutes on 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${1:-$ROOT/../shared/data/fashion-mnist}"
OUTPUT="${2:-$ROOT/docs/prefect-report.png}"
BIN="$ROOT/.venv/bin"
CHROMIUM="${CHROMIUM:-chromium}"
WIDTH="${SCREENSHOT_WIDTH:-1600}"  # wide enough for the trial table
HEIGHT=8000  # taller than the page; the empty bottom is cut off afterwards

command -v "$CHROMIUM" >/dev/null || { echo "screenshot.sh: $CHROMIUM not found" >&2; exit 1; }
[ -x "$BIN/mnist-flow" ] || { echo "screenshot.sh: run 'make test' first (no $BIN)" >&2; exit 1; }
[ -d "$DATA_DIR" ] || { echo "screenshot.sh: no Fashion-MNIST folder $DATA_DIR" >&2; exit 1; }
DATA_DIR="$(cd "$DATA_DIR" && pwd)"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PREFECT_HOME="$WORK/prefect-home"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_UI_API_URL="$PREFECT_API_URL"  # the page must call this server, not port 4200
export PREFECT_SERVER_ANALYTICS_ENABLED=false

echo "starting a Prefect server on port $PORT"
setsid "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
# setsid makes the server the leader of its own process group: cleanup stops all of it
healthy=""
for _ in $(seq 1 240); do
    if "$BIN/python" -c "import urllib.request as u; u.urlopen('$PREFECT_API_URL/health', timeout=5)" 2>/dev/null; then
        healthy=1
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 1
done
[ -n "$healthy" ] || { echo "screenshot.sh: the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

# the report lists the data folder: show it under the temporary folder, not this machine's path
ln -s "$DATA_DIR" "$WORK/fashion-mnist"
echo "running the default pipeline on all of Fashion-MNIST (8 trials x 2 epochs, final model 60 epochs)"
"$BIN/mnist-flow" run --dataset fashion-mnist --data-dir "$WORK/fashion-mnist" \
    --seed 0 --out "$WORK/run" --registry "$WORK/registry" --cache-dir "$WORK/cache"

ARTIFACT_ID="$("$BIN/python" - <<'EOF'
import json, os, urllib.request

body = {"artifacts": {"key": {"any_": ["mnist-report"]}}, "sort": "CREATED_DESC", "limit": 1}
request = urllib.request.Request(
    os.environ["PREFECT_API_URL"] + "/artifacts/filter",
    data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.load(response)[0]["id"])
EOF
)"
URL="http://127.0.0.1:$PORT/artifacts/artifact/$ARTIFACT_ID"
echo "screenshot of $URL"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$WORK/chromium" \
    --hide-scrollbars --window-size="$WIDTH,$HEIGHT" --virtual-time-budget=15000 \
    --screenshot="$WORK/page.png" "$URL" 2>"$WORK/chromium.log" \
    || { cat "$WORK/chromium.log" >&2; exit 1; }

# Cut the empty bottom of the page and store a 64-colour palette PNG (about 150-250 KB).
"$BIN/python" - "$WORK/page.png" "$OUTPUT" <<'EOF'
import sys

import numpy as np
from PIL import Image

page = Image.open(sys.argv[1]).convert("RGB")
grey = np.asarray(page.convert("L"), dtype=np.int16)
column = grey[:, 270 : page.width - 300]  # the artifact, between navigation and side panel
content = np.flatnonzero((np.abs(column - column[-1:, :]) > 16).any(axis=1))
if content.size == 0:
    sys.exit("screenshot.sh: the page is empty; is the server reachable from the UI?")
bottom = min(page.height, int(content[-1]) + 32)
shot = page.crop((0, 0, page.width, bottom))
shot.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
    sys.argv[2], optimize=True
)
print(f"wrote {sys.argv[2]} ({shot.width}x{shot.height})")
EOF
