#!/bin/sh
# Guest side of vrdma-kernel: the kernel driver (virtio_rdma.ko) against the real daemon.
#
# Parameters (kernel command line vrdma.<key>=<value>, see vrdma-kernel.json):
#   VRDMA_GUID     node GUID the daemon gave this guest's device, sysfs format (xxxx:xxxx:xxxx:xxxx)
#   VRDMA_IP       this guest's address (a.b.c.d/prefix), whose RoCE v2 GID must appear
#   VRDMA_ROLE     full: also unload with resources live, reload, and test again; basic: one pass
#   VRDMA_NOTIFY   shared: the device has page-per-vq=off; user-space verbs must be refused
#                  (with a warning naming page-per-vq) while kernel verbs work
#   VRDMA_MAC      none: the daemon gave this device no MAC; the driver must pair port 1 with
#                  the only Ethernet netdev (eth0) anyway
#
# Checks, each a VRDMA-TEST line:
#   load, ib-device, port-active, link-layer-ethernet, rdma-link, node-guid, gid-ipv4-rocev2,
#   gid-netdev, [paired-without-config-mac], [user-verbs-off-without-page-per-vq],
#   kselftest-<name> (one per self-test case, from the kernel log), kselftest-done;
#   full role: rmmod-with-resources, ib-device-gone, selftest-released, reload,
#   reload-ib-device, reload-port-active, reload-gid, netdev-unbound, netdev-gids-gone,
#   netdev-rebound, netdev-gids-back (the NIC driver unbound and bound again under the RDMA
#   device), kselftest2-<name>, kselftest2-done, rmmod-selftest; then unload, dmesg-clean
. /lib/vrdma/test-lib.sh

IB=/sys/class/infiniband/vrdma0
PORT=$IB/ports/1
role=${VRDMA_ROLE:-basic}
ip=${VRDMA_IP%/*}

# The sysfs form of ::ffff:a.b.c.d
ipv4_gid() {
    echo "$1" | awk -F. '{ printf "0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x\n", $1, $2, $3, $4 }'
}
want_gid=$(ipv4_gid "$ip")

# The GID index holding $want_gid, or nothing.
gid_index() {
    for f in "$PORT"/gids/*; do
        [ "$(cat "$f" 2>/dev/null)" = "$want_gid" ] || continue
        i=${f##*/}
        [ "$(cat "$PORT/gid_attrs/types/$i" 2>/dev/null)" = "RoCE v2" ] && { echo "$i"; return 0; }
    done
    return 1
}

port_active() { grep -q "ACTIVE" "$PORT/state" 2>/dev/null; }

wait_device() {
    vrdma_retry 20 test -d "$IB" && vrdma_retry 20 port_active && vrdma_retry 30 gid_index >/dev/null
}

# Turns the self test's kernel log lines (after marker $1) into VRDMA-TEST lines prefixed $2.
selftest_results() {
    dmesg | awk -v m="$1" 'index($0, m) { on = 1; next } on' > /tmp/st.log
    sed -n 's/.*vrdma-selftest: PASS \([^ ]*\).*/\1/p' /tmp/st.log | while read -r n; do
        vrdma_pass "$2-$n"
    done
    sed -n 's/.*vrdma-selftest: FAIL \([^ :]*\).*/\1/p' /tmp/st.log | while read -r n; do
        vrdma_fail "$2-$n"
    done
    grep -q "vrdma-selftest: DONE vrdma0 pass=[1-9][0-9]* fail=0" /tmp/st.log
}

mark() { echo "vrdma-kernel: $1" > /dev/kmsg; }

# ---- load and basic checks ------------------------------------------------------------------
mark start
vrdma_check load insmod /test/virtio_rdma.ko || exit 1
vrdma_check ib-device vrdma_retry 20 test -d "$IB" || { dmesg | tail -30; exit 1; }
vrdma_check port-active vrdma_retry 20 port_active
cat "$PORT/state" "$PORT/phys_state" "$PORT/link_layer" 2>&1
vrdma_check link-layer-ethernet grep -qx Ethernet "$PORT/link_layer"
rdma link show 2>&1
vrdma_check rdma-link sh -c 'rdma link show vrdma0/1 | grep -q "state ACTIVE.*netdev eth0"'
echo "node_guid $(cat "$IB/node_guid") (want $VRDMA_GUID)"
vrdma_check node-guid test "$(cat "$IB/node_guid")" = "$VRDMA_GUID"
vrdma_check gid-ipv4-rocev2 vrdma_retry 30 gid_index
for f in "$PORT"/gids/*; do
    i=${f##*/}
    g=$(cat "$f" 2>/dev/null)
    [ "$g" = 0000:0000:0000:0000:0000:0000:0000:0000 ] && continue
    echo "gid $i $g $(cat "$PORT/gid_attrs/types/$i" 2>/dev/null) $(cat "$PORT/gid_attrs/ndevs/$i" 2>/dev/null)"
done
gi=$(gid_index)
vrdma_check gid-netdev test "$(cat "$PORT/gid_attrs/ndevs/$gi" 2>/dev/null)" = eth0
if [ "${VRDMA_MAC:-}" = none ]; then
    vrdma_check paired-without-config-mac sh -c 'dmesg | grep -q "port 1 paired with eth0"'
fi
if [ "${VRDMA_NOTIFY:-}" = shared ]; then
    vrdma_check user-verbs-off-without-page-per-vq sh -c 'dmesg | grep -q "set page-per-vq=on"'
fi

# ---- kernel verbs self test -----------------------------------------------------------------
mark selftest1
insmod /test/vrdma_selftest.ko
vrdma_check kselftest-done selftest_results "vrdma-kernel: selftest1" kselftest

if [ "$role" = full ]; then
    # Unload the driver under the self test's live objects: ib_unregister_device makes the
    # self test's ib_client release them through the driver's destroy paths.
    mark rmmod1
    vrdma_check rmmod-with-resources rmmod virtio_rdma
    vrdma_check ib-device-gone test ! -e "$IB"
    vrdma_check selftest-released sh -c 'dmesg | grep -q "vrdma-selftest: releasing vrdma0"'
    rmmod vrdma_selftest

    # Bind again: a fresh device (reset) that works as the first one did.
    mark reload
    vrdma_check reload insmod /test/virtio_rdma.ko
    vrdma_check reload-ib-device vrdma_retry 20 test -d "$IB"
    vrdma_check reload-port-active vrdma_retry 20 port_active
    vrdma_check reload-gid vrdma_retry 30 gid_index

    # The paired NIC goes away and comes back under the RDMA device (netdevice notifier).
    nic=$(basename "$(readlink /sys/class/net/eth0/device)")
    echo "$nic" > /sys/bus/virtio/drivers/virtio_net/unbind
    vrdma_check netdev-unbound vrdma_retry 10 sh -c '! rdma link show vrdma0/1 | grep -q netdev'
    vrdma_check netdev-gids-gone vrdma_retry 10 sh -c '! grep -q "^0000:0000:0000:0000:0000:ffff:" '"$PORT"'/gids/*'
    rdma link show vrdma0/1
    echo "$nic" > /sys/bus/virtio/drivers/virtio_net/bind
    vrdma_retry 10 test -e /sys/class/net/eth0
    ip addr add "$VRDMA_IP" dev eth0 && ip link set eth0 up
    vrdma_check netdev-rebound vrdma_retry 10 sh -c 'rdma link show vrdma0/1 | grep -q "netdev eth0"'
    vrdma_check netdev-gids-back vrdma_retry 30 gid_index
    rdma link show vrdma0/1
    mark selftest2
    insmod /test/vrdma_selftest.ko
    vrdma_check kselftest2-done selftest_results "vrdma-kernel: selftest2" kselftest2
    # This time the self test goes first, then the driver.
    vrdma_check rmmod-selftest rmmod vrdma_selftest
fi
mark unload
if lsmod | grep -q '^vrdma_selftest'; then rmmod vrdma_selftest; fi
vrdma_check unload rmmod virtio_rdma

# ---- nothing went wrong in the kernel -------------------------------------------------------
dmesg | grep -E "vrdma|virtio_rdma|infiniband|ib_" | tail -60
vrdma_check_dmesg_clean
