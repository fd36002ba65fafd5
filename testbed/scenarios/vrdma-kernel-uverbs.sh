#!/bin/sh
# Guest side of vrdma-kernel-uverbs.py: user-space verbs (the rdma-core provider overlay) on
# the kernel driver.
#
#   VRDMA_ROLE  server | client: ibv_{rc,ud,srq}_pingpong between the two guests; the server
#               then unloads the driver under a process holding a context, PD, MR, CQ, QP and
#               a mapped notify page (ib_core disassociates it), and loads it again;
#               shared: the device has page-per-vq=off: opening the device must fail cleanly.
. /lib/vrdma/test-lib.sh

load() { vrdma_load_driver /test/virtio_rdma.ko; }

vrdma_check load load || exit 1
G=$(vrdma_roce_gid vrdma0)

case "$VRDMA_ROLE" in
shared)
    vrdma_check devinfo-refused sh -c '! ibv_devinfo -d vrdma0'
    vrdma_check warns-page-per-vq sh -c 'dmesg | grep -q "set page-per-vq=on"'
    ;;
server|client)
    vrdma_check devinfo ibv_devinfo -d vrdma0
    for t in rc ud srq; do
        size=1024; [ $t = ud ] && size=512
        if [ "$VRDMA_ROLE" = server ]; then
            vrdma_check $t-pingpong timeout 90 ibv_${t}_pingpong -d vrdma0 -g "$G" -n 100 -s $size
        else
            sleep 1
            vrdma_check $t-pingpong vrdma_retry 30 timeout 90 ibv_${t}_pingpong -d vrdma0 -g "$G" -n 100 -s $size "$VRDMA_PEER"
        fi
    done
    # 4 MiB buffers: MRs of 1024 pages, described by indirect page lists.
    if [ "$VRDMA_ROLE" = server ]; then
        vrdma_check rc-pingpong-4m timeout 120 ibv_rc_pingpong -d vrdma0 -g "$G" -n 5 -s 4194304
    else
        sleep 1
        vrdma_check rc-pingpong-4m vrdma_retry 30 timeout 120 ibv_rc_pingpong -d vrdma0 -g "$G" -n 5 -s 4194304 "$VRDMA_PEER"
    fi
    ;;
esac

if [ "$VRDMA_ROLE" = server ]; then
    # A server waiting for a client owns every kind of object and the notify page.
    ibv_rc_pingpong -d vrdma0 -g "$G" -p 18516 > /tmp/pp.log 2>&1 &
    pid=$!
    sleep 2
    vrdma_check process-maps-notify-page grep -q uverbs "/proc/$pid/maps"
    vrdma_check rmmod-with-user-context timeout 60 rmmod virtio_rdma
    kill $pid 2>/dev/null; wait $pid 2>/dev/null
    vrdma_check reload load
    G=$(vrdma_roce_gid vrdma0)
    vrdma_check devinfo-after-reload ibv_devinfo -d vrdma0
fi
vrdma_check unload rmmod virtio_rdma
vrdma_check_dmesg_clean
