#!/usr/bin/env python3
"""vrdma-kernel: the guest kernel driver against the real daemon (build, then run the JSON).

    testbed/scenarios/vrdma-kernel.py [--daemon-bin BIN_DIR_OR_FILE] [--results DIR]

Runs guest-driver/linux/build.sh (virtio_rdma.ko and vrdma_selftest.ko into build/guest-driver/),
then testbed/scenarios/vrdma-kernel.json with VRDMA_DAEMON set to the daemon (--daemon-bin,
else $VRDMA_DAEMON, else vhost-user-rdma on PATH). The scenario itself is described in
vrdma-kernel.sh; the last line is run.py's "N passed, M failed".
"""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
REPO = os.path.dirname(TESTBED)
sys.path.insert(0, TESTBED)
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon-bin", help="vhost-user-rdma, or the directory holding it")
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--timeout", type=float)
    a = ap.parse_args()
    daemon = a.daemon_bin or os.environ.get("VRDMA_DAEMON") or shutil.which("vhost-user-rdma")
    if daemon and os.path.isdir(daemon):
        daemon = os.path.join(daemon, "vhost-user-rdma")
    if not daemon or not os.access(daemon, os.X_OK):
        sys.exit("vrdma-kernel: no vhost-user-rdma (give --daemon-bin)")
    os.environ["VRDMA_DAEMON"] = os.path.abspath(daemon)
    if subprocess.run([os.path.join(REPO, "guest-driver", "linux", "build.sh")],
                      stdout=subprocess.DEVNULL).returncode:
        print("0 passed, 1 failed (guest-driver/linux/build.sh failed)")
        sys.exit(1)
    tb = run.load_scenario(os.path.join(HERE, "vrdma-kernel.json"),
                           {"results": a.results, "timeout": a.timeout})
    sys.exit(0 if tb.run() else 1)


if __name__ == "__main__":
    main()
