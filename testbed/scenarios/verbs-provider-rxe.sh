#!/bin/sh
# Guest side of verbs-provider-rxe (host side: verbs-provider-rxe.py). The daemon's verbs
# provider on a real libibverbs device: Linux soft-RoCE (rdma_rxe) on this guest's eth0, with the
# daemon (built with --static-swift-stdlib) and the provider conformance suite running in the
# guest; the suite's in-process front-end plays two VMs, one per guest IP address (10.0.0.1 and
# 10.0.0.2 on eth0, so rxe0's GID table holds a RoCE v2 GID for each).
#   rxe0 up with both GIDs; the daemon refuses an absent device, naming rxe0;
#   every conformance scenario passes on --provider verbs --ib-device rxe0;
#   registering 1 GiB of guest memory (timed, reported, not judged);
#   eth0 down and up: the guest device reports PORT_ERR, then PORT_ACTIVE (host async events).
. /lib/vrdma/test-lib.sh

vrdma_check rxe-link-add rdma link add rxe0 type rxe netdev eth0 || exit 0
ip addr add 10.0.0.2/24 dev eth0
# gid_has IP: rxe0 has the RoCE v2 GID ::ffff:IP.
gid_has() {
    hex=$(echo "$1" | awk -F. '{ printf "%02x%02x:%02x%02x", $1, $2, $3, $4 }')
    grep -qx "0000:0000:0000:0000:0000:ffff:$hex" /sys/class/infiniband/rxe0/ports/1/gids/* 2>/dev/null
}
both_gids() { gid_has 10.0.0.1 && gid_has 10.0.0.2; }
vrdma_check rxe-gids vrdma_retry 30 both_gids || exit 0
gidx=$(vrdma_roce_gid rxe0)
echo "== rxe0 RoCE v2 IPv4 GID index $gidx"

echo "== absent device"
/test/vhost-user-rdma --socket-path /tmp/absent.sock --provider verbs --ib-device mlx5_9 >/tmp/absent.log 2>&1
rc=$?
cat /tmp/absent.log
vrdma_check absent-device-exit-1 [ "$rc" -eq 1 ]
vrdma_check absent-device-names-rxe0 grep -q "no RDMA device 'mlx5_9'; present: rxe0" /tmp/absent.log

echo "== conformance on rxe0"
timeout 1500 /test/vrdma-conformance --daemon /test/vhost-user-rdma --gid ::ffff:10.0.0.1 --gid ::ffff:10.0.0.2 \
    -- --provider verbs --ib-device rxe0 --gid-index "$gidx" >/tmp/conformance.log 2>&1
rc=$?
# One result line per scenario, named from its title (run.py takes the first word as the name).
awk '/^(PASS|FAIL) / { r = $1; $1 = ""; n = substr($0, 2); gsub(/[^A-Za-z0-9]+/, "-", n)
                        print "VRDMA-TEST: " r " rxe-" substr(n, 1, 72); next } { print }' /tmp/conformance.log
vrdma_check conformance-exit-0 [ "$rc" -eq 0 ]

echo "== registration of 1 GiB"
vrdma_check register-1gib timeout 900 /test/vrdma-conformance --daemon /test/vhost-user-rdma --measure-registration 1024 \
    -- --provider verbs --ib-device rxe0 --gid-index "$gidx"

echo "== port events: eth0 down and up"
vrdma_check port-events timeout 120 /test/vrdma-conformance --daemon /test/vhost-user-rdma --gid ::ffff:10.0.0.1 --gid ::ffff:10.0.0.2 \
    --port-events "ip link set eth0 down; sleep 2; ip link set eth0 up" -- --provider verbs --ib-device rxe0 --gid-index "$gidx"
