#!/usr/bin/env bash
# Boot a guest with a vhost-user-rdma device served by the vrdma daemon.
#
#   qemu/example-run.sh KERNEL INITRD [SOCKET]
#
# Start the back-end first (it listens; QEMU connects as the client):
#   vhost-user-rdma --socket-path=/run/vrdma/vm1.sock
# KERNEL/INITRD: e.g. vmlinuz and initramfs.cpio.gz from testbed/build-guest.sh.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 KERNEL INITRD [SOCKET]" >&2; exit 2; }
kernel=$1 initrd=$2 sock=${3:-/run/vrdma/vm1.sock}
qemu=${VRDMA_QEMU:-$("$(dirname "$0")/build.sh" | tail -1)}
# TCG by default: a /dev/kvm that exists is not proof that KVM works (it
# hangs in some nested setups). VRDMA_ACCEL=kvm to use it.
accel=${VRDMA_ACCEL:-tcg}
mem=512M

# shellcheck disable=SC2054  # the commas are QEMU option syntax
args=(
    -machine "q35,accel=$accel,memory-backend=mem"
    # vhost-user needs guest RAM in a shareable fd: the daemon mmaps it.
    -object "memory-backend-memfd,id=mem,size=$mem,share=on"
    -m "$mem" -smp 2
    -nographic -no-reboot
    -kernel "$kernel" -initrd "$initrd"
    -append "console=ttyS0 vrdma.ip=10.0.2.15/24"
    # reconnect=1: if the daemon restarts, QEMU reconnects within a second
    # and restarts the rings (see qemu/README.md, "Reconnect").
    -chardev "socket,id=rdma0,path=$sock,reconnect=1"
    -device vhost-user-rdma-pci,chardev=rdma0
    # Ordinary user-mode networking for the guest's own traffic.
    -netdev user,id=net0 -device virtio-net-pci,netdev=net0,romfile=
)
exec "$qemu" "${args[@]}"
