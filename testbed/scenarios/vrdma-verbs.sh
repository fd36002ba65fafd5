#!/bin/sh
# Guest side of vrdma-verbs (host side: vrdma-verbs.py). User-space verbs through the virtio_rdma
# provider and guest driver, against one vhost-user-rdma daemon serving both guests:
#   both    load the driver; vrdma0 port ACTIVE; libibverbs loads its providers without warnings;
#           /test/vrdma-verbs-check (guest-driver/rdma-core/tests): the provider's features one by one
#   a <-> b on vrdma0: ibv_rc_pingpong (polling and with events), ibv_ud_pingpong,
#           ibv_srq_pingpong, perftest ib_{write,send,read}_bw and ib_{write,send,read,atomic}_lat
#           (a serves, b connects to a)
#   a <-> b /test/tcp-pingpong (testbed/guest/tcp-pingpong.c) over eth0: latency and bandwidth
#   a <-> b the same tools as on vrdma0 (but the events run) over rdma_rxe on eth0, with the
#           same (overlay) libibverbs
#   a       the same tools between two processes of this guest (loopback through the device),
#           last, so that no step of b's waits for them
# The numbers are compared by vrdma-verbs.py after the run, never checked here.
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

# loop_pair NAME CMD...: two processes of this guest, CMD -p PORT in the background as the
# server and CMD -p PORT 127.0.0.1 as the client, each run on a port of its own from 18601 (the
# pairs use the tools' default 18515). Its variables have names of their own: test-lib's
# functions set name, t and rc.
loop_port=18600
loop_pair() {
    loop_name=$1; shift
    loop_port=$((loop_port + 1))
    echo "== $loop_name"
    timeout $T "$@" -p $loop_port >/tmp/loop-server.out 2>&1 &
    srv=$!
    vrdma_check "$loop_name" vrdma_retry 30 timeout $T "$@" -p $loop_port 127.0.0.1
    vrdma_check "$loop_name-server" wait $srv
    cat /tmp/loop-server.out
}

# tools RUNNER DEV GID PREFIX SUFFIX N BW_N: the stock pingpongs and perftest tools over DEV (GID
# index GID), check PREFIX<tool>SUFFIX run by RUNNER; N iterations, BW_N for the _bw tools.
tools() {
    run=$1 dev=$2 g=$3 pre=$4 suf=$5 n=$6 bw_n=$7
    $run "${pre}rc-pingpong$suf" ibv_rc_pingpong -d "$dev" -g "$g" -n "$n" -s 4096
    $run "${pre}ud-pingpong$suf" ibv_ud_pingpong -d "$dev" -g "$g" -n "$n" -s 1024
    $run "${pre}srq-pingpong$suf" ibv_srq_pingpong -d "$dev" -g "$g" -n "$n" -s 4096
    for op in write send read; do
        $run "${pre}$op-bw$suf" ib_${op}_bw -d "$dev" -x "$g" -s 65536 -n "$bw_n" -F --report_gbits
    done
    for op in write send read atomic; do
        $run "${pre}$op-lat$suf" ib_${op}_lat -d "$dev" -x "$g" -n "$n" -F
    done
}

vrdma_check driver-load vrdma_load_driver /test/virtio_rdma.ko || exit 0
gidx=$(vrdma_roce_gid vrdma0)
echo "== vrdma0 in guest $VRDMA_NAME, RoCE v2 IPv4 GID index $gidx"
ibv_devinfo -d vrdma0 >/tmp/devinfo 2>/tmp/devinfo.err
cat /tmp/devinfo /tmp/devinfo.err
vrdma_check devinfo-port-active grep -q 'state:.*PORT_ACTIVE' /tmp/devinfo
vrdma_check no-provider-warnings [ ! -s /tmp/devinfo.err ]

# What the stock tools do not reach (immediate data, inline, atomics, fence, events, resize, UD
# GRH, SRQ limit, WR checks): one process, QPs looped back through the device.
echo "== vrdma-verbs-check"
vrdma_check verbs-check timeout $T /test/vrdma-verbs-check vrdma0 "$gidx"

tools pair vrdma0 "$gidx" "" "" 1000 500
pair rc-pingpong-events ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 200 -s 1024 -e

# The kernel's TCP over the NIC: the same round trip as rc-pingpong, and a 64 KiB stream.
pair tcp-lat /test/tcp-pingpong -p 18700 -s 4096 -n 1000
pair tcp-bw /test/tcp-pingpong -p 18701 -b -s 65536 -n 500

# Soft-RoCE on the same NIC with the same libibverbs 59: the overlay's rxe provider.
echo "== rxe"
if vrdma_check rxe-link-add rdma link add rxe0 type rxe netdev eth0 &&
   vrdma_check rxe-gid vrdma_retry 30 vrdma_roce_gid rxe0; then
    tools pair rxe0 "$(vrdma_roce_gid rxe0)" rxe- "" 1000 500
fi

[ "$VRDMA_ROLE" = server ] || exit 0
tools loop_pair vrdma0 "$gidx" "" -local 200 200
