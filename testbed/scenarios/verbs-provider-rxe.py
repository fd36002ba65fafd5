#!/usr/bin/env python3
"""verbs-provider-rxe: the daemon's verbs provider on rdma_rxe inside a TCG guest.

    testbed/scenarios/verbs-provider-rxe.py [--results DIR] [--bin-dir DIR]

Builds vhost-user-rdma and vrdma-conformance with --static-swift-stdlib (run.static_swift_build:
release, scratch directory .build-static; the guest has no Swift runtime, only Debian's
libibverbs and libstdc++), then boots
one guest with 2 GiB that runs both against rxe0 (verbs-provider-rxe.sh says what it
checks). --bin-dir takes ready static binaries instead. The last line is run.py's
"N passed, M failed".
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
sys.path.insert(0, TESTBED)
import run  # noqa: E402

PRODUCTS = ("vhost-user-rdma", "vrdma-conformance")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--bin-dir", help="directory with static vhost-user-rdma and vrdma-conformance")
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()
    try:
        bin_dir = a.bin_dir or run.static_swift_build(PRODUCTS)
    except subprocess.CalledProcessError:
        bin_dir = None
    if not bin_dir or not all(os.access(os.path.join(bin_dir, p), os.X_OK) for p in PRODUCTS):
        print("0 passed, 1 failed (no static build of %s)" % " and ".join(PRODUCTS))
        sys.exit(1)
    results = a.results or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vrdma-results", "verbs-provider-rxe")
    tb = run.Testbed(results=results, timeout=a.timeout)
    tb.add_guest("a", ip="10.0.0.1/24", script=os.path.join(HERE, "verbs-provider-rxe.sh"), memory="2G",
                 files={"/test/" + p: os.path.join(bin_dir, p) for p in PRODUCTS})
    ok = tb.run()
    log = os.path.join(results, "a", "serial.log")
    print("\n==== guest a (%s)" % log)
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith(("VRDMA-TEST: FAIL", "==", "REG_MR")) or "passed," in line:
                print("  " + line.rstrip())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
