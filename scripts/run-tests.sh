#!/usr/bin/env bash
# make test: every test stage, one summary line at the end ("N passed, M failed").
# Stages: Swift unit and daemon tests (swift test), fuzz smoke runs, then guest tests when present.
set -uo pipefail
cd "$(dirname "$0")/.."
out=build/test
mkdir -p "$out"
passed=0; failed=0

stage() {  # stage NAME PASSED FAILED
    echo "-- $1: $2 passed, $3 failed"
    passed=$((passed + $2)); failed=$((failed + $3))
}

# Swift Testing prints one line per finished test: "✔ Test ... passed after" / "✘ Test ... failed after".
# Three runs: the vhost-user tests count this process's descriptors to find leaks, so no test that
# opens and closes descriptors all the time (front-ends, spawned daemons) may run beside them.
swift_stage() {  # swift_stage NAME SWIFT-TEST-ARGS...
    local name=$1; shift
    local log="$out/swift-test-$name.log"
    swift test "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local p f
    p=$(grep -E '^✔ Test .* passed after' "$log" | grep -vc '^✔ Test run with' || true)
    f=$(grep -E '^✘ Test .* failed after' "$log" | grep -vc '^✘ Test run with' || true)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "swift test exited $rc without a failed test line (build or crash)"; fi
    stage "swift test ($name)" "$p" "$f"
}
swift_stage vhost-user --no-parallel --filter VhostUserTests
swift_stage unit --skip-build --skip IntegrationTests --skip VhostUserTests
swift_stage integration --skip-build --filter IntegrationTests

bin=$(swift build --show-bin-path)
for target in message descriptor-chain; do
    if "$bin/VRDMAFuzz" "$target" --runs 20000 --seed 1 > "$out/fuzz-$target.log" 2>&1; then
        stage "fuzz smoke $target" 1 0
    else
        tail -5 "$out/fuzz-$target.log"; stage "fuzz smoke $target" 0 1
    fi
done

# A stage that is a script ending with "N passed, M failed"; a non-zero exit without a failed
# line counts as one failure, and no such line at all as a failed stage.
counted_stage() {  # counted_stage NAME LOG CMD...
    local name=$1 log=$2; shift 2
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -n "$line" ]; then
        f=$(echo "$line" | cut -d' ' -f3)
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
        stage "$name" "$(echo "$line" | cut -d' ' -f1)" "$f"
    else
        stage "$name" 0 1
    fi
}

# The guest driver on the host: builds against the newest 6.12 headers, checkpatch --strict of
# every source file (installs headers and linux-source if missing).
counted_stage "guest driver checks" "$out/guest-driver-check.log" guest-driver/linux/check.sh

# The libvirt hook under a real libvirtd: defines and starts a TCG domain with the vRDMA device,
# destroys it (installs libvirt-daemon-system if missing; cleans up after itself).
counted_stage "libvirt hook" "$out/libvirt.log" testbed/libvirt-test.sh "$bin"

# Real QEMU and Debian guests under TCG (testbed/e2e.sh).
counted_stage "guest tests" "$out/e2e.log" testbed/e2e.sh "$bin"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
