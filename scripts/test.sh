#!/usr/bin/env bash
# The test command: fetch the real models (cached, checksummed), install the Python reference
# reader used as an oracle, then run every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-models.sh
# Oracles and clients the tests drive: the gguf reference reader, the official openai client.
if ! python3 -c 'import gguf, openai' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check gguf==0.19.0 openai
fi
# Release: the kernels and models are tested as they run (every suite was validated this way).
cargo test --workspace --release "$@"
