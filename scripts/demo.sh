#!/usr/bin/env bash
# Build weft and run the main demo: the breakfast of the seed article,
# three ways (sequential, gather, two tasks joined one by one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j"$(nproc)" --target breakfast >/dev/null
exec ./build/default/examples/breakfast "$@"
