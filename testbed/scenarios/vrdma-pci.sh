#!/bin/sh
# Needs a back-end: run.py scenarios/vrdma-pci.json --daemon "vhost-user-rdma --socket-path={sock}"
# Checks that the vhost-user-rdma-pci function is visible to the guest with
# the IDs a driver will match on. No guest driver is loaded.
. /lib/vrdma/test-lib.sh
found=
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x106a ]; then
        found=$d
    fi
done
[ -n "$found" ] && vrdma_pass pci-1af4-106a || { vrdma_fail pci-1af4-106a; exit 0; }
echo "$found class=$(cat "$found/class") subsystem=$(cat "$found/subsystem_vendor"):$(cat "$found/subsystem_device")"
# virtio_pci binds every 1af4:1040-107f function and registers a virtio
# device for it, even without a driver for id 42.
vrdma_check virtio-id-42 sh -c 'grep -qx 0x002a /sys/bus/virtio/devices/*/device'
