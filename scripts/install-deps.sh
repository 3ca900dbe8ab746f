#!/usr/bin/env bash
# Install the Debian packages weft needs, only those missing (idempotent).
#   scripts/install-deps.sh          build + tests
#   scripts/install-deps.sh --bench  also the benchmark peers
set -euo pipefail

packages=(cmake make gcc g++ clang pkg-config libboost-context-dev libcmocka-dev libbenchmark-dev)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(golang-go libboost-fiber-dev libtbb-dev)
  # gnuplot draws the report's plots; any Debian gnuplot (-nox, -qt, -x11) will do.
  command -v gnuplot >/dev/null 2>&1 || packages+=(gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
