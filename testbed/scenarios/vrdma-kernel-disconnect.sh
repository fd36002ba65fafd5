#!/bin/sh
# Guest side of vrdma-kernel-disconnect.py: the daemon disappears under the kernel driver.
#
#   1. load virtio_rdma (3 s command timeout) and the self test, whose objects stay live;
#   2. "READY-FOR-KILL": the host SIGKILLs the daemon; a new IP address makes ib_core add a
#      GID, whose command gets no answer: the driver must declare the device dead (not hang),
#      report the port down and reset the device;
#   3. the self test and the driver unload on the dead device;
#   4. "READY-FOR-RESTART": the host starts a new daemon; the driver binds again (retrying
#      until QEMU has reconnected) and the self test passes on the new device.
. /lib/vrdma/test-lib.sh

IB=/sys/class/infiniband/vrdma0
PORT=$IB/ports/1
KO_ARGS="cmd_timeout_ms=3000"

port_active() { grep -q ACTIVE "$PORT/state" 2>/dev/null; }
port_not_active() { test -e "$PORT/state" && ! port_active; }
has_ipv4_gid() { grep -q "0000:0000:0000:0000:0000:ffff:" "$PORT"/gids/* 2>/dev/null; }
in_dmesg() { dmesg | grep -q "$1"; }
mark() { echo "vrdma-kernel: $1" > /dev/kmsg; }

selftest_ok() {
    dmesg | awk -v m="vrdma-kernel: $1" 'index($0, m) { on = 1; next } on' |
        grep -q "vrdma-selftest: DONE vrdma0 pass=[1-9][0-9]* fail=0"
}

bind() {
    insmod /test/virtio_rdma.ko $KO_ARGS 2>/dev/null
    test -d "$IB" && return 0
    rmmod virtio_rdma 2>/dev/null
    return 1
}

mark selftest1
vrdma_check load insmod /test/virtio_rdma.ko $KO_ARGS || exit 1
vrdma_check port-active vrdma_retry 20 port_active
vrdma_check gid vrdma_retry 30 has_ipv4_gid
insmod /test/vrdma_selftest.ko run_cm=0
vrdma_check selftest-before-kill selftest_ok selftest1

echo "VRDMA-KERNEL: READY-FOR-KILL"
sleep 3
mark kill
# Any command now goes unanswered: a new address makes ib_core add its GIDs.
ip addr add 10.0.0.11/24 dev eth0
vrdma_check device-declared-dead vrdma_retry 30 in_dmesg "device failed"
vrdma_check port-down-when-dead vrdma_retry 10 port_not_active
vrdma_check device-reset-after-failure vrdma_retry 10 in_dmesg "device reset after failure"
cat "$PORT/state" 2>&1
# Objects of a dead device are still released, without waiting for the device.
vrdma_check rmmod-selftest-dead rmmod vrdma_selftest
vrdma_check rmmod-driver-dead rmmod virtio_rdma
ip addr del 10.0.0.11/24 dev eth0

echo "VRDMA-KERNEL: READY-FOR-RESTART"
mark restart
vrdma_check rebind-after-restart vrdma_retry 60 bind
vrdma_check port-active-after-restart vrdma_retry 20 port_active
vrdma_check gid-after-restart vrdma_retry 30 has_ipv4_gid
mark selftest2
insmod /test/vrdma_selftest.ko run_cm=0
vrdma_check selftest-after-restart selftest_ok selftest2
dmesg | grep "vrdma-selftest: FAIL"
vrdma_check rmmod-selftest rmmod vrdma_selftest
vrdma_check unload rmmod virtio_rdma

dmesg | grep -E "vrdma|virtio_rdma|infiniband" | tail -40
vrdma_check_dmesg_clean
