#!/usr/bin/env python3
"""vrdma-verbs: user-space verbs through the virtio_rdma provider, against rdma_rxe and TCP.

    testbed/scenarios/vrdma-verbs.py --daemon-bin $(swift build --show-bin-path)

Builds what is missing (the guest driver module with guest-driver/linux/build.sh, rdma-core 59
with the provider with guest-driver/rdma-core/build.sh; both cached), compiles
testbed/guest/tcp-pingpong.c into the results directory (gcc -static), starts one daemon serving
both guests (each device paired with its guest's NIC MAC), and boots two guests whose QEMU
devices have page-per-vq=on (user-space notify pages, needed for kernel bypass). The checks are
in vrdma-verbs.sh (and vrdma-verbs-check, the test program build.sh leaves beside the overlay):
the stock pingpongs and perftest between the guests over vrdma0 and over rxe0, TCP ping-pong and
stream, the same tools looped back inside guest a. Afterwards the tools' result lines are
printed per guest, then one table comparing vrdma with rxe and TCP (parsed from the logs, never
asserted; under TCG only the ratios of one run mean something). The last line is the verdict,
run.py's "N passed, M failed".

A scenario file cannot name these inputs: their paths are cache directories keyed by content,
known only once the build scripts have run, hence this script rather than a .json.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import vrdma_guests  # noqa: E402

# The table's rows: (label, the check name in vrdma-verbs.sh; rxe's is "rxe-" + it, guest a's
# loopback run's it + "-local").
TOOLS = [("ibv_rc_pingpong 4 KiB", "rc-pingpong"), ("ibv_ud_pingpong 1 KiB", "ud-pingpong"),
         ("ibv_srq_pingpong 4 KiB", "srq-pingpong"),
         ("ib_write_bw 64 KiB", "write-bw"), ("ib_send_bw 64 KiB", "send-bw"),
         ("ib_read_bw 64 KiB", "read-bw"), ("ib_write_lat 2 B", "write-lat"),
         ("ib_send_lat 2 B", "send-lat"), ("ib_read_lat 2 B", "read-lat"),
         ("ib_atomic_lat 8 B", "atomic-lat")]
# TCP against the vrdma tool doing the same: (label, vrdma check, TCP check).
TCP = [("round trip 4 KiB: ibv_rc_pingpong / TCP", "rc-pingpong", "tcp-lat"),
       ("stream 64 KiB: ib_send_bw / TCP", "send-bw", "tcp-bw")]


def guest_files(parts, results):
    """build.sh leaves its verbs check program beside the overlay; tcp-pingpong is built here."""
    check = os.path.join(os.path.dirname(os.path.abspath(parts["rdma_core"])), "tests", "vrdma-verbs-check")
    tcp = os.path.join(results, "tcp-pingpong")
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", tcp,
                    os.path.join(os.path.dirname(HERE), "guest", "tcp-pingpong.c")], check=True)
    return {"/test/vrdma-verbs-check": check, "/test/tcp-pingpong": tcp}


def times_better(vrdma, other):
    """How many times vrdma beats other ("-" without both numbers); latencies (usec) lower."""
    if not (vrdma and other and vrdma[0] and other[0]):
        return "-"
    return "%.2fx" % (other[0] / vrdma[0] if other[1].startswith("usec") else vrdma[0] / other[0])


def compare(logs):
    """The table. Every tool run between the guests prints its numbers on the client, b."""
    between, loop = vrdma_guests.tool_numbers(logs["b"]), vrdma_guests.tool_numbers(logs["a"])
    line = "%-40s %-10s %10s %10s %10s %10s"

    def cell(number):
        return "%.2f" % number[0] if number else "-"

    def unit(*numbers):
        return next((n[1] for n in numbers if n), "-")

    print("\n==== vrdma vs rxe vs TCP between the guests; loopback: two processes in guest a. Under TCG"
          "\n     only the ratios mean something; \"x better\" = how many times vrdma beats the other.")
    print(line % ("tool", "unit", "vrdma", "rxe", "x better", "loopback"))
    for label, check in TOOLS:
        v, r, lo = between.get(check), between.get("rxe-" + check), loop.get(check + "-local")
        print(line % (label, unit(v, r, lo), cell(v), cell(r), times_better(v, r), cell(lo)))
    print(line % ("", "", "vrdma", "TCP", "x better", ""))
    for label, check, tcp_check in TCP:
        v, t = between.get(check), between.get(tcp_check)
        print(line % (label, unit(v, t), cell(v), cell(t), times_better(v, t), ""))


if __name__ == "__main__":
    vrdma_guests.run_pair("vrdma-verbs", __doc__.split("\n\n")[0], os.path.join(HERE, "vrdma-verbs.sh"),
                          extra_files=guest_files, report=compare)
