#!/usr/bin/env bash
# make demo: two Debian guests talking RDMA through one vhost-user-rdma daemon (software
# provider). Builds what is missing (QEMU with our device, the guest image, the guest driver,
# rdma-core with our provider; each cached under ~/.cache/vrdma), boots both guests under TCG,
# runs ibv_rc_pingpong and ib_write_bw between them and prints what the tools printed.
set -euo pipefail
bin="$1"
cd "$(dirname "$0")/.."
exec testbed/scenarios/vrdma-demo.py --daemon-bin "$bin"
