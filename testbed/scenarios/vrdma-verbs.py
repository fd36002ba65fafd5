#!/usr/bin/env python3
"""vrdma-verbs: user-space verbs through the virtio_rdma provider between two guests.

    testbed/scenarios/vrdma-verbs.py --daemon-bin $(swift build --show-bin-path)

Builds what is missing (the guest driver module with guest-driver/linux/build.sh, rdma-core 59
with the provider with guest-driver/rdma-core/build.sh; both cached), starts one daemon serving
both guests (each device paired with its guest's NIC MAC), and boots two guests whose QEMU
devices have page-per-vq=on (user-space notify pages, needed for kernel bypass). The checks are
in vrdma-verbs.sh (and vrdma-verbs-check, the test program build.sh leaves beside the overlay);
afterwards the tools' result lines are printed per guest. The last line is
run.py's "N passed, M failed".

A scenario file cannot name these inputs: their paths are cache directories keyed by content,
known only once the build scripts have run, hence this script rather than a .json.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import vrdma_guests  # noqa: E402


def verbs_check(parts):
    """build.sh leaves its verbs check program beside the overlay."""
    check = os.path.join(os.path.dirname(os.path.abspath(parts["rdma_core"])), "tests", "vrdma-verbs-check")
    return {"/test/vrdma-verbs-check": check}


if __name__ == "__main__":
    vrdma_guests.run_pair("vrdma-verbs", __doc__.split("\n\n")[0], os.path.join(HERE, "vrdma-verbs.sh"), extra_files=verbs_check)
