#!/usr/bin/env python3
"""make demo: two guests talking RDMA through vhost-user-rdma.

    testbed/scenarios/vrdma-demo.py --daemon-bin $(swift build --show-bin-path)

Builds what is missing (QEMU, guest, driver module, rdma-core with our provider), starts one
daemon with the software provider serving two guests, boots them, runs ibv_rc_pingpong and then
ib_write_bw between them (vrdma-demo.sh) and prints what the tools printed.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import vrdma_guests  # noqa: E402

if __name__ == "__main__":
    vrdma_guests.run_pair("vrdma-demo", __doc__.split("\n\n")[0], os.path.join(HERE, "vrdma-demo.sh"))
