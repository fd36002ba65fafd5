#!/bin/sh
# Guest side of vrdma-reboot-traffic (host side: vrdma-reboot-traffic.py). Guest a reboots in the
# middle of RC traffic from guest b, both on one vhost-user-rdma daemon:
#   a boot 1  loads the driver and serves /test/vrdma-peer-loss (an RC QP taking b's WRITEs and
#             SENDs); when the program says so, with its QP still live, `reboot -f`
#   b         /test/vrdma-peer-loss client: streams to a until a's QP is gone, then checks its own
#             QP's completions (RETRY_EXC_ERR, then WR_FLUSH_ERR; none lost or doubled), state
#             (ERR), later posts (flushed) and teardown; then ibv_rc_pingpong with a's second boot
#   a boot 2  loads the driver again, port ACTIVE, ibv_rc_pingpong server for b
#   both      dmesg-clean
# A scratch disk (/dev/vda) tells a's boots apart. Environment: VRDMA_ROLE=server|client,
# VRDMA_PEER=<server IPv4> on the client.
. /lib/vrdma/test-lib.sh

T=300       # seconds for one tool run (TCG is slow; a's reboot is in b's runs)
PORT=18700  # vrdma-peer-loss's socket, apart from ibv_rc_pingpong's 18515

tag=
if [ "$VRDMA_ROLE" = server ]; then
    vrdma_retry 10 test -b /dev/vda   # virtio_blk may still be probing
    if [ "$(dd if=/dev/vda bs=14 count=1 2>/dev/null)" = vrdma-rebooted ]; then
        tag=-boot2
    else
        tag=-boot1
    fi
fi
echo "VRDMA-PEER-LOSS: start$tag"
vrdma_check "driver-load$tag" vrdma_load_driver /test/virtio_rdma.ko || exit 0
gidx=$(vrdma_roce_gid vrdma0)
echo "== vrdma0 in guest $VRDMA_NAME, RoCE v2 IPv4 GID index $gidx"

case $VRDMA_ROLE$tag in
server-boot1)
    printf vrdma-rebooted | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null
    # Once traffic runs the program does not end by itself: the reboot ends it, its QP live.
    timeout $((2 * T)) /test/vrdma-peer-loss vrdma0 "$gidx" server $PORT 2>&1 | tee /tmp/peer-loss.log &
    tee=$!   # ends when the program does
    while ! grep -q "reboot now" /tmp/peer-loss.log; do
        kill -0 $tee 2>/dev/null || break   # it failed before the reboot point
        sleep 1
    done
    if grep -q "reboot now" /tmp/peer-loss.log; then
        echo "VRDMA-PEER-LOSS: rebooting"
        dmesg -n 8   # the shutdown path's kernel messages, all of them, on the console
        reboot -f
        sleep 60     # not reached
    fi
    vrdma_fail peer-loss-server-reached-reboot
    ;;
server-boot2)
    vrdma_check devinfo-port-active-boot2 sh -c "ibv_devinfo -d vrdma0 | grep -q 'state:.*PORT_ACTIVE'"
    echo "== rc-pingpong-after-reboot (server)"
    vrdma_check rc-pingpong-after-reboot timeout $T ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 200 -s 4096
    ;;
client)
    echo "== vrdma-peer-loss (client)"
    vrdma_check peer-loss-client timeout $T /test/vrdma-peer-loss vrdma0 "$gidx" client $PORT "$VRDMA_PEER"
    echo "== rc-pingpong-after-reboot (client)"
    vrdma_check rc-pingpong-after-peer-reboot vrdma_retry 60 \
        timeout $T ibv_rc_pingpong -d vrdma0 -g "$gidx" -n 200 -s 4096 "$VRDMA_PEER"
    ;;
esac

# ---- nothing went wrong in this kernel (a's first boot: the host reads its shutdown messages)
vrdma_check_dmesg_clean "dmesg-clean$tag"
