#!/bin/sh
# Guest side of vrdma-rdmacm (host side: vrdma-rdmacm.py). Connections set up by rdma_cm (QP1,
# ib_mad, ib_cm in the guest kernel over the device's GSI QP) between two guests on one
# vhost-user-rdma daemon:
#   both    load the driver; vrdma0 port ACTIVE; /dev/infiniband/rdma_cm present
#   a <-> b rping (a: rping -s, b: rping -c -C 10 -v), perftest ib_{write,send,read}_bw -R and
#           ib_{write,send,read,atomic}_lat -R (a serves, b connects to a's IP), ucmatose
#   both    dmesg-clean
# Environment: VRDMA_ROLE=server|client, VRDMA_PEER=<server IPv4> on the client.
# Each client step retries until its server listens; a server step waits for one client.
. /lib/vrdma/test-lib.sh

T=60   # seconds for one tool run (TCG is slow)

# pair NAME SERVER_CMD -- CLIENT_CMD: the server runs SERVER_CMD, the client CLIENT_CMD
# (retried until the server answers). Each pair gets a port of its own (-p, which every tool
# here takes). perftest -R connects twice, for its parameters and then its QPs; a client
# that reaches the second connect before the server listens for it is rejected, crashes, and
# leaves the server waiting for it. So a server that timed out waiting starts again (at most 3
# runs); one that failed otherwise fails the pair.
cm_port=18600
serve() {
    for run in 1 2 3; do
        timeout $T "$@"
        rc=$?
        # Timed out: busybox's timeout leaves the child's SIGTERM status (143), GNU's 124.
        [ $rc -eq 124 ] || [ $rc -eq 143 ] || return $rc
        echo "== server run $run timed out: starting again"
    done
    return $rc
}
# connect CMD...: the client, rerun until it succeeds, for as long as the server may run.
connect() {
    cm_end=$(($(date +%s) + 3 * T + 30))
    until timeout $T "$@"; do
        [ "$(date +%s)" -lt $cm_end ] || return 1
        sleep 1
    done
}
pair() {
    name=$1; shift
    cm_port=$((cm_port + 1))
    srv=""
    while [ "$1" != -- ]; do srv="$srv $1"; shift; done
    shift
    echo "== $name ($VRDMA_ROLE, port $cm_port)"
    if [ "$VRDMA_ROLE" = server ]; then
        # shellcheck disable=SC2086
        vrdma_check "$name" serve $srv -p $cm_port
    else
        vrdma_check "$name" connect "$@" -p $cm_port
    fi
}

vrdma_check driver-load vrdma_load_driver /test/virtio_rdma.ko || exit 0
modprobe rdma_ucm 2>/dev/null
vrdma_check rdma-cm-device vrdma_retry 10 test -c /dev/infiniband/rdma_cm
gidx=$(vrdma_roce_gid vrdma0)
echo "== vrdma0 in guest $VRDMA_NAME, RoCE v2 IPv4 GID index $gidx"
ibv_devinfo -d vrdma0 -v 2>&1 | grep -E 'state:|active_mtu:|max_mad|cap_flags' || true
P=$VRDMA_PEER

pair rping rping -s -v -C 10 -- rping -c -a "$P" -C 10 -v
for op in write send read; do
    pair $op-bw-rdma-cm ib_${op}_bw -d vrdma0 -R -s 65536 -n 1000 -F --report_gbits -- \
        ib_${op}_bw -d vrdma0 -R -s 65536 -n 1000 -F --report_gbits "$P"
done
for op in write send read atomic; do
    pair $op-lat-rdma-cm ib_${op}_lat -d vrdma0 -R -n 1000 -F -- ib_${op}_lat -d vrdma0 -R -n 1000 -F "$P"
done
if command -v ucmatose >/dev/null; then
    pair ucmatose ucmatose -- ucmatose -s "$P"
else
    vrdma_fail ucmatose-installed  # rdmacm-utils is in the image (build-guest.sh)
fi

# ---- nothing went wrong in the kernel -------------------------------------------------------
dmesg | grep -E "vrdma|virtio_rdma|infiniband|ib_|rdma_cm" | tail -40
vrdma_check_dmesg_clean
vrdma_check no-driver-warnings sh -c '! dmesg | grep -E "virtio_rdma virtio[0-9]+: .*(unknown QP|dropped|bad answer|failed|device index)"'
