#!/bin/sh
# make demo, in each guest: load the vrdma driver, then ibv_rc_pingpong and ib_write_bw between
# the two guests, both served by one vhost-user-rdma daemon on the host.
# Environment: VRDMA_ROLE=server|client, VRDMA_PEER=<server IPv4> on the client.
. /lib/vrdma/test-lib.sh

vrdma_check driver-load vrdma_load_driver /test/virtio_rdma.ko || exit 0
gidx=$(vrdma_roce_gid vrdma0)
echo "== vrdma0 in guest $VRDMA_NAME (RoCE v2 GID index $gidx)"
ibv_devinfo -d vrdma0

if [ "$VRDMA_ROLE" = server ]; then
    echo "== ibv_rc_pingpong (server)"
    vrdma_check rc-pingpong timeout 120 ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 1000 -s 4096
    echo "== ib_write_bw (server)"
    vrdma_check write-bw timeout 180 ib_write_bw -d vrdma0 -x "$gidx" -s 65536 -n 2000 -F --report_gbits
else
    echo "== ibv_rc_pingpong (client)"
    vrdma_check rc-pingpong vrdma_retry 60 \
        timeout 120 ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 1000 -s 4096 "$VRDMA_PEER"
    echo "== ib_write_bw (client)"
    vrdma_check write-bw vrdma_retry 60 \
        timeout 180 ib_write_bw -d vrdma0 -x "$gidx" -s 65536 -n 2000 -F --report_gbits "$VRDMA_PEER"
fi
