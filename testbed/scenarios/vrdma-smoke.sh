#!/bin/sh
# Guest side of the vrdma smoke test (host side: vrdma-smoke.py, which also
# passes these on the kernel command line):
#   VRDMA_QUEUES  num-queues of the vhost-user-rdma-pci device
#   VRDMA_GUID    node GUID the daemon was given (hex, no 0x)
#   VRDMA_MAC     MAC the daemon was given
#   VRDMA_REBOOT  1: reboot once (a scratch disk /dev/vda remembers it) and
#                 repeat the checks on the second boot
# No driver binds the device (there is none yet): /test/virtio-probe reads the
# virtio common and device config straight from the BAR.
. /lib/vrdma/test-lib.sh

tag=
if [ "${VRDMA_REBOOT:-0}" = 1 ]; then
    vrdma_retry 10 test -b /dev/vda   # virtio_blk may still be probing
    if [ "$(dd if=/dev/vda bs=14 count=1 2>/dev/null)" = vrdma-rebooted ]; then
        tag=-boot2
    else
        tag=-boot1
    fi
fi
echo "VRDMA-SMOKE: start$tag"

# (a) PCI function 1af4:106a, bound to virtio-pci, virtio device id 42.
bdf=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x106a ] && bdf=${d##*/}
done
dev=/sys/bus/pci/devices/$bdf
if [ -n "$bdf" ]; then
    vrdma_pass "pci-1af4-106a$tag"
    drv=$(readlink "$dev/driver"); drv=${drv##*/}
    echo "$bdf driver=$drv class=$(cat "$dev/class")"
    vrdma_check "bound-virtio-pci$tag" [ "$drv" = virtio-pci ]
    vrdma_check "virtio-id-42$tag" sh -c "grep -qx 0x002a $dev/virtio*/device"
else
    vrdma_fail "pci-1af4-106a$tag"
fi

# (b) queue count and config space, as the guest reads them.
out=$([ -n "$bdf" ] && /test/virtio-probe "$bdf" 128)
echo "$out"
bytes=$(echo "$out" | sed -n 's/^device_cfg_bytes=//p')
le() {  # le OFFSET LEN: little-endian field of the config as hex digits, MSB first
    echo "$bytes" | awk -v o="$1" -v n="$2" '{ s = ""; for (i = o + n; i > o; i--) s = s $i; print s }'
}
mac=$(echo "$bytes" | awk '{ print $89 ":" $90 ":" $91 ":" $92 ":" $93 ":" $94 }')
echo "decoded: abi_version=0x$(le 0 4)" \
     "phys_port_cnt=0x$(le 4 4) node_guid=0x$(le 8 8) mac=$mac port_state=0x$(le 94 1)"
nq=$(echo "$out" | sed -n 's/^num_queues=//p')
vrdma_check "num-queues-$VRDMA_QUEUES$tag" [ "$nq" = "$VRDMA_QUEUES" ]
vrdma_check "config-abi-version-1$tag" [ "$(le 0 4)" = 00000001 ]
vrdma_check "config-phys-port-cnt-1$tag" [ "$(le 4 4)" = 00000001 ]
vrdma_check "config-node-guid$tag" [ "$(le 8 8)" = "$(echo "$VRDMA_GUID" | tr A-F a-f)" ]
vrdma_check "config-mac$tag" [ "$mac" = "$(echo "$VRDMA_MAC" | tr A-F a-f)" ]
vrdma_check "config-port-active$tag" [ "$(le 94 1)" = 04 ]
# page-per-vq is on by default: every doorbell queue's notify address has its own page.
vrdma_check "notify-page-per-queue$tag" [ "$(echo "$out" | sed -n 's/^notify_off_multiplier=//p')" = 4096 ]

if [ "$tag" = -boot1 ]; then
    printf vrdma-rebooted | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null
    sync
    echo "VRDMA-SMOKE: rebooting"
    reboot -f
    sleep 60   # not reached
fi
