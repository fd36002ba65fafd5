#!/bin/sh
# Guest side of vrdma-verbs (host side: vrdma-verbs.py). User-space verbs through the virtio_rdma
# provider and guest driver, against one vhost-user-rdma daemon serving both guests:
#   both    load the driver; vrdma0 port ACTIVE; libibverbs loads its providers without warnings;
#           ibv_rc_pingpong between two processes of the same guest (loopback through the device);
#           /test/vrdma-verbs-check (guest-driver/rdma-core/tests): the provider's features one by one
#   a <-> b ibv_rc_pingpong (polling and with events), ibv_ud_pingpong, ibv_srq_pingpong, then
#           perftest ib_{write,send,read}_bw and ib_{write,send,read,atomic}_lat (a serves, b
#           connects to a)
#   a <-> b ibv_rc_pingpong over rdma_rxe on eth0, with the same (overlay) libibverbs
# Environment: VRDMA_ROLE=server|client, VRDMA_PEER=<server IPv4> on the client.
# Each client step retries until its server listens; a server step waits for one client.
. /lib/vrdma/test-lib.sh

T=120   # seconds for one tool run (TCG is slow)

# pair NAME CMD...: the server runs CMD, the client runs CMD $VRDMA_PEER (retried until it answers).
pair() {
    name=$1; shift
    echo "== $name ($VRDMA_ROLE)"
    if [ "$VRDMA_ROLE" = server ]; then
        vrdma_check "$name" timeout $T "$@"
    else
        vrdma_check "$name" vrdma_retry 60 timeout $T "$@" "$VRDMA_PEER"
    fi
}

vrdma_check driver-load vrdma_load_driver /test/virtio_rdma.ko || exit 0
gidx=$(vrdma_roce_gid vrdma0)
echo "== vrdma0 in guest $VRDMA_NAME, RoCE v2 IPv4 GID index $gidx"
ibv_devinfo -d vrdma0 >/tmp/devinfo 2>/tmp/devinfo.err
cat /tmp/devinfo /tmp/devinfo.err
vrdma_check devinfo-port-active grep -q 'state:.*PORT_ACTIVE' /tmp/devinfo
vrdma_check no-provider-warnings [ ! -s /tmp/devinfo.err ]

# Two processes of this guest: loopback through the device (port 18600, apart from the pairs).
echo "== rc-pingpong-local"
timeout $T ibv_rc_pingpong -d vrdma0 -g "$gidx" -p 18600 -n 500 -s 4096 >/tmp/local-srv 2>&1 &
srv=$!
vrdma_check rc-pingpong-local vrdma_retry 30 \
    timeout $T ibv_rc_pingpong -d vrdma0 -g "$gidx" -p 18600 -n 500 -s 4096 127.0.0.1
vrdma_check rc-pingpong-local-server wait $srv
cat /tmp/local-srv

# What the stock tools do not reach (immediate data, inline, atomics, fence, events, resize, UD
# GRH, SRQ limit, WR checks): one process, QPs looped back through the device.
echo "== vrdma-verbs-check"
vrdma_check verbs-check timeout $T /test/vrdma-verbs-check vrdma0 "$gidx"

pair rc-pingpong ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 1000 -s 4096
pair rc-pingpong-events ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 200 -s 1024 -e
pair ud-pingpong ibv_ud_pingpong -d vrdma0 -g "$gidx" -n 1000 -s 1024
pair srq-pingpong ibv_srq_pingpong -d vrdma0 -g "$gidx" -n 500 -s 4096
pair write-bw ib_write_bw -d vrdma0 -x "$gidx" -s 65536 -n 2000 -F --report_gbits
pair send-bw ib_send_bw -d vrdma0 -x "$gidx" -s 65536 -n 2000 -F --report_gbits
pair read-bw ib_read_bw -d vrdma0 -x "$gidx" -s 65536 -n 2000 -F --report_gbits
pair write-lat ib_write_lat -d vrdma0 -x "$gidx" -n 1000 -F
pair send-lat ib_send_lat -d vrdma0 -x "$gidx" -n 1000 -F
pair read-lat ib_read_lat -d vrdma0 -x "$gidx" -n 1000 -F
pair atomic-lat ib_atomic_lat -d vrdma0 -x "$gidx" -n 1000 -F

# Soft-RoCE on the same NIC with the same libibverbs 59: the overlay's rxe provider.
echo "== rxe"
vrdma_check rxe-link-add rdma link add rxe0 type rxe netdev eth0 || exit 0
vrdma_check rxe-gid vrdma_retry 30 vrdma_roce_gid rxe0 || exit 0
pair rxe-rc-pingpong ibv_rc_pingpong -d rxe0 -g "$(vrdma_roce_gid rxe0)" -n 200 -s 4096
