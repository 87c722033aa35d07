#!/usr/bin/env bash
# The web chat UI of `ferrite serve` in headless Chromium (Playwright): load the page, send a
# message, see a streamed answer, stop a generation, regenerate. Screenshot:
# target/webui/webui.png. Needs: apt-get install -y chromium; node + npm (playwright-core is
# installed into target/webui). Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/webui
mkdir -p "$OUT"

command -v /usr/bin/chromium >/dev/null || { echo "chromium missing: apt-get install -y chromium" >&2; exit 1; }
scripts/fetch-models.sh smollm2
# Reuses the release build `scripts/test.sh` made.
cargo build --release -p ferrite
if [ ! -d "$OUT/node_modules/playwright-core" ]; then
  (cd "$OUT" && [ -f package.json ] || (cd "$OUT" && npm init -y >/dev/null)) 
  (cd "$OUT" && npm install --silent --no-audit --no-fund playwright-core)
fi
cp crates/server/tests/webui/webui.mjs "$OUT/webui.mjs"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$TARGET/release/ferrite" serve --host 127.0.0.1 --port "$PORT" --parallel 2 -c 2048 >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
node "$OUT/webui.mjs" "http://127.0.0.1:$PORT" "$OUT"
kill -TERM "$SERVER"
wait "$SERVER"
echo "1 passed, 0 failed"
