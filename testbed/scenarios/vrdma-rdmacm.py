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

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import vrdma_guests  # noqa: E402

if __name__ == "__main__":
    vrdma_guests.run_pair("vrdma-rdmacm", __doc__.split("\n\n")[0], os.path.join(HERE, "vrdma-rdmacm.sh"))
