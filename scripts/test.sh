#!/usr/bin/env bash
# Build weft and run every test: the default build (gcc), the same with
# clang, AddressSanitizer+UBSan, ThreadSanitizer, and the tiny-deque build.
# Stops at the first failure.
#   scripts/test.sh              all configurations
#   scripts/test.sh default asan only those
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
presets=("$@")
[[ ${#presets[@]} -eq 0 ]] && presets=(default clang asan tsan smallq)
jobs=$(nproc)
for p in "${presets[@]}"; do
  echo "=== $p"
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p" -j"$jobs"
  ctest --preset "$p" -j"$jobs"
done
