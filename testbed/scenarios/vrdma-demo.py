#!/usr/bin/env python3
"""make demo: two guests talking RDMA through vhost-user-rdma.

    testbed/scenarios/vrdma-demo.py --daemon-bin $(swift build --show-bin-path)

Builds what is missing (QEMU, guest, driver module, rdma-core with our provider), starts one
daemon with the software provider serving two guests, boots them, runs ibv_rc_pingpong and then
ib_write_bw between them (vrdma-demo.sh) and prints what the tools printed.
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

# Lines worth showing from each guest's console: the tools' results and the verdicts.
SHOW = re.compile(r"^(== |VRDMA-TEST|\s*(hca_id|port:|state:|link_layer|active_mtu)|"
                  r".*(bytes in .* seconds|iters in .* usec/iter)|"
                  r"\s*#bytes|\s*\d+\s+\d+\s+[\d.]+\s+[\d.]+)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon-bin", required=True)
    ap.add_argument("--results")
    a = ap.parse_args()
    parts = vrdma_guests.build()
    results = a.results or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vrdma-results",
                                        "vrdma-demo-" + time.strftime("%Y%m%d-%H%M%S"))
    tb = run.Testbed(results=results, timeout=420,
                     daemon=vrdma_guests.daemon_command(a.daemon_bin, ["a", "b"], "--log-level info"))
    script = os.path.join(HERE, "vrdma-demo.sh")
    tb.add_guest("a", ip="10.0.0.1/24", script=script, params={"role": "server"},
                 **vrdma_guests.guest_options(parts))
    tb.add_guest("b", ip="10.0.0.2/24", script=script, params={"role": "client", "peer": "10.0.0.1"},
                 **vrdma_guests.guest_options(parts))
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
