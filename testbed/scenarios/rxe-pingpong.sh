#!/bin/sh
# Smoke test without the vrdma daemon: Linux soft-RoCE (rdma_rxe) on eth0 in
# two guests, ibv_rc_pingpong between them. Proves kernel + modules,
# rdma-core user space and the guest-to-guest Ethernet segment.
# Environment (from the kernel command line): VRDMA_ROLE=server|client,
# VRDMA_PEER=<server IPv4> on the client.
. /lib/vrdma/test-lib.sh

vrdma_check rxe-link-add rdma link add rxe0 type rxe netdev eth0 || exit 0
vrdma_check ibv-devices sh -c 'ibv_devices | grep -q rxe0'

# The RoCE v2 GID built from the IPv4 address; its index depends on how many IPv6 addresses
# eth0 has, so look it up.
gidx=$(vrdma_roce_gid rxe0)
port=/sys/class/infiniband/rxe0/ports/1
for i in 0 1 2 3; do
    echo "gid[$i] $(cat $port/gids/$i) $(cat $port/gid_attrs/types/$i 2>/dev/null)"
done
[ -n "$gidx" ] && vrdma_pass rxe-ipv4-gid || { vrdma_fail rxe-ipv4-gid; exit 0; }
gidx=${VRDMA_GID:-$gidx}   # vrdma.gid=N on the kernel command line overrides
echo "using GID index $gidx"

if [ "$VRDMA_ROLE" = server ]; then
    vrdma_check rc-pingpong-server timeout 120 ibv_rc_pingpong -d rxe0 -g "$gidx" -n 200 -s 4096
else
    # The server may not be listening yet: retry until it answers.
    vrdma_check rc-pingpong-client vrdma_retry 60 \
        timeout 60 ibv_rc_pingpong -d rxe0 -g "$gidx" -n 200 -s 4096 "$VRDMA_PEER"
fi
