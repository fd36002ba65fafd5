#!/usr/bin/env python3
"""vrdma-kernel-uverbs: user-space verbs on the kernel driver (rdma-core provider overlay).

    testbed/scenarios/vrdma-kernel-uverbs.py [--daemon-bin BIN_DIR_OR_FILE]

Builds (or reuses) virtio_rdma.ko with guest-driver/linux/build.sh and the provider overlay
with guest-driver/rdma-core/build.sh. The daemon is --daemon-bin, else $VRDMA_DAEMON, else
vhost-user-rdma on PATH; one daemon serves three guests:

  a, b   ibv_{rc,ud,srq}_pingpong between the guests (RoCE v2 GIDs of their IPv4 addresses);
         a then unloads the driver under a process holding verbs objects and a mapped notify
         page, loads it again and opens the device
  c      page-per-vq=off: the driver refuses user contexts (ibv_devinfo fails) with a warning

Guest checks are in vrdma-kernel-uverbs.sh; the last line is "N passed, M failed".
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBED = os.path.dirname(HERE)
REPO = os.path.dirname(TESTBED)
sys.path.insert(0, TESTBED)
import run  # noqa: E402

# Under TCG on a loaded host the kernel's early IO-APIC timer check can fail ("IO-APIC + timer
# doesn't work!", a panic before any driver runs); skip it.
KERNEL_ARGS = ["no_timer_check"]


def last_line(cmd):
    """The last stdout line of a build script, or exit with a failure line."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if p.returncode or not p.stdout.strip():
        print("0 passed, 1 failed (%s failed)" % os.path.relpath(cmd[0], REPO))
        sys.exit(1)
    return p.stdout.strip().splitlines()[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon-bin", help="vhost-user-rdma, or the directory holding it")
    ap.add_argument("--overlay", help="a provider overlay already built (default: run "
                    "guest-driver/rdma-core/build.sh)")
    ap.add_argument("--results", help="results directory")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    daemon = a.daemon_bin or os.environ.get("VRDMA_DAEMON") or shutil.which("vhost-user-rdma")
    if daemon and os.path.isdir(daemon):
        daemon = os.path.join(daemon, "vhost-user-rdma")
    if not daemon or not os.access(daemon, os.X_OK):
        sys.exit("vrdma-kernel-uverbs: no vhost-user-rdma (give --daemon-bin)")
    ko = last_line([os.path.join(REPO, "guest-driver", "linux", "build.sh")])
    overlay = a.overlay or last_line([os.path.join(REPO, "guest-driver", "rdma-core", "build.sh")])

    macs = " ".join("--mac 52:54:00:76:72:%02x" % n for n in (1, 2, 3))
    cmd = 'for s in {socks}; do set -- "$@" --socket-path "$s"; done; ' \
          'exec %s --log-level debug %s "$@"' % (shlex.quote(os.path.abspath(daemon)), macs)
    tb = run.Testbed(daemon=cmd, timeout=a.timeout, results=a.results, daemon_exit_status=0)
    script = os.path.join(HERE, "vrdma-kernel-uverbs.sh")
    files = {"/test/virtio_rdma.ko": ko}
    tb.add_guest("a", ip="10.0.0.1/24", script=script, rdma=True, kernel_args=KERNEL_ARGS,
                 rdma_props="num-queues=4", params={"role": "server"}, files=files,
                 overlays=[overlay])
    tb.add_guest("b", ip="10.0.0.2/24", script=script, rdma=True, kernel_args=KERNEL_ARGS,
                 rdma_props="num-queues=4", params={"role": "client", "peer": "10.0.0.1"},
                 files=files, overlays=[overlay])
    tb.add_guest("c", ip="10.0.0.3/24", script=script, rdma=True, kernel_args=KERNEL_ARGS,
                 rdma_props="num-queues=4,page-per-vq=off",
                 params={"role": "shared"}, files=files, overlays=[overlay])
    sys.exit(0 if tb.run() else 1)


if __name__ == "__main__":
    main()
