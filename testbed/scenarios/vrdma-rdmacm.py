#!/usr/bin/env python3
"""vrdma-rdmacm: rdma_cm connections (rping, perftest -R, ucmatose) between two guests.

    testbed/scenarios/vrdma-rdmacm.py --daemon-bin $(swift build --show-bin-path)

Builds what is missing (the guest driver module with guest-driver/linux/build.sh, rdma-core 59
with the provider with guest-driver/rdma-core/build.sh; both cached), starts one daemon serving
both guests (each device paired with its guest's NIC MAC), and boots two guests whose QEMU
devices have page-per-vq=on. Connection setup goes through the guest kernels' rdma_cm and
ib_cm over the device's GSI QP (QP1). The checks are in vrdma-rdmacm.sh; afterwards the tools'
result lines are printed per guest. The last line is run.py's "N passed, M failed".

A scenario file cannot name these inputs: their paths are cache directories keyed by content,
known only once the build scripts have run, hence this script rather than a .json.
"""
import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run  # noqa: E402
import vrdma_guests  # noqa: E402

# Device properties: more doorbell queues than QEMU's default 4, and a notify page per queue
# (our QEMU patch's default; spelled out because kernel bypass depends on it).
RDMA_PROPS = "num-queues=6,page-per-vq=on"
# rping ends its threads with pthread_exit/pthread_cancel, for which glibc loads libgcc_s.so.1
# (stack unwinding); the base guest image does not carry it (rping aborts: "libgcc_s.so.1 must be
# installed for pthread_exit to work"). The host's copy: libgcc_s is backward compatible.
GUEST_LIBS = {"/lib/x86_64-linux-gnu/libgcc_s.so.1": "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1"}
# The tools' result lines, worth a summary after the run.
SHOW = re.compile(r"^(== |VRDMA-TEST: FAIL|\s*(state:|active_mtu:)|.*ping data:|"
                  r".*(bytes in .* seconds|iters in .* usec/iter)|"
                  r"\s*#bytes|\s*\d+\s+\d+\s+[\d.]+\s+[\d.]+)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon-bin", required=True,
                    help="vhost-user-rdma binary, or the directory holding it")
    ap.add_argument("--results")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--log-level", default="info", help="daemon --log-level")
    ap.add_argument("--ko", help="virtio_rdma.ko to use (default: guest-driver/linux/build.sh)")
    ap.add_argument("--rdma-core", help="rdma-core overlay directory to use "
                    "(default: guest-driver/rdma-core/build.sh)")
    a = ap.parse_args()
    if a.ko and a.rdma_core:
        parts = {"ko": a.ko, "rdma_core": a.rdma_core}
    else:
        parts = vrdma_guests.build()
        parts.update({k: v for k, v in (("ko", a.ko), ("rdma_core", a.rdma_core)) if v})
    results = a.results or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vrdma-results",
                                        "vrdma-rdmacm-" + time.strftime("%Y%m%d-%H%M%S"))
    tb = run.Testbed(results=results, timeout=a.timeout,
                     daemon=vrdma_guests.daemon_command(a.daemon_bin, ["a", "b"],
                                                        "--log-level " + a.log_level))
    script = os.path.join(HERE, "vrdma-rdmacm.sh")
    for name, ip, params in (("a", "10.0.0.1/24", {"role": "server"}),
                             ("b", "10.0.0.2/24", {"role": "client", "peer": "10.0.0.1"})):
        opts = vrdma_guests.guest_options(parts, GUEST_LIBS)
        opts["rdma_props"] = RDMA_PROPS
        tb.add_guest(name, ip=ip, script=script, params=params, **opts)
    ok = tb.run()
    for g in tb.guests:
        print("\n==== guest %s (%s)" % (g.name, g.log_path))
        with open(g.log_path, errors="replace") as f:
            for line in f:
                if SHOW.match(line):
                    print("  " + line.rstrip())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
