#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fuzzes the vhost-user message decoder and the descriptor-chain walker (`make fuzz`).
#   scripts/fuzz.sh [seconds-per-target]        default 60
# Coverage-guided with libFuzzer + AddressSanitizer when the toolchain can link it (the swift.org
# Linux toolchains ship libclang_rt.fuzzer); otherwise the plain seeded driver, re-seeded until
# the time is up. Corpora and crash artifacts stay in .build-fuzz/ (ignored by git).
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/.."
scratch=.build-fuzz
targets=(message descriptor-chain)
status=0

# libFuzzer build: LLVMFuzzerTestOneInput plus a Swift main that calls LLVMFuzzerRunDriver
# (SwiftPM aliases main to the module's top-level code, so libFuzzer's own main is not used).
if swift build -c release --product VRDMAFuzz --scratch-path "$scratch" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DLIBFUZZER; then
    bin=$(swift build -c release --product VRDMAFuzz --scratch-path "$scratch" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DLIBFUZZER --show-bin-path)/VRDMAFuzz
    for t in "${targets[@]}"; do
        corpus=$scratch/corpus/$t artifacts=$scratch/artifacts/$t
        mkdir -p "$corpus" "$artifacts"
        echo "== libFuzzer: $t for ${seconds}s (corpus $corpus)"
        # Swift's backtracer is off: ASan and libFuzzer print the stack, and the two fight.
        if ! SWIFT_BACKTRACE=enable=no VRDMA_FUZZ_TARGET=$t VRDMA_FUZZ_SEEDS=$corpus \
            "$bin" -max_total_time="$seconds" -timeout=10 -max_len=4200 -print_final_stats=1 \
                   -artifact_prefix="$artifacts/" "$corpus"; then
            echo "!! $t: libFuzzer found a failure; reproducer in $artifacts/ (replay: VRDMA_FUZZ_TARGET=$t $bin FILE)"
            status=1
        fi
    done
else
    echo "== libFuzzer is not usable with this toolchain; running the plain driver"
    swift build -c release --product VRDMAFuzz --scratch-path "$scratch-plain"
    bin=$(swift build -c release --product VRDMAFuzz --scratch-path "$scratch-plain" --show-bin-path)/VRDMAFuzz
    for t in "${targets[@]}"; do
        end=$((SECONDS + seconds)) seed=1 inputs=0
        while ((SECONDS < end)); do
            # A crash writes ./crash-<target>; replay it with: $bin <target> crash-<target> --runs 0
            if ! "$bin" "$t" --runs 50000 --seed "$seed" >/dev/null; then
                echo "!! $t: crash with --seed $seed"
                status=1
                break
            fi
            inputs=$((inputs + 50000)) seed=$((seed + 1))
        done
        echo "fuzz $t: $inputs seeded inputs in ${seconds}s"
    done
fi
exit $status
