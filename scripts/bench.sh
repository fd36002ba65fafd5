#!/usr/bin/env bash
# make bench: run the benchmark driver from the release build and leave its results in
# build/bench/results.json. Usage: scripts/bench.sh BIN_DIR [VRDMABench arguments...]
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 BIN_DIR [--quick] [--only NAME]..." >&2
    exit 2
fi
bin=$(cd "$1" && pwd)  # absolute before the cd below
cd "$(dirname "$0")/.."
mkdir -p build/bench
"$bin/VRDMABench" --json build/bench/results.json "${@:2}"
echo "== results: $(pwd)/build/bench/results.json"
