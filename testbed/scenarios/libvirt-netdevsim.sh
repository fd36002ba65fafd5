#!/bin/sh
# The libvirt hook against a real kernel: netdevsim gives a PF with 4 SR-IOV
# VFs, the hook (vrdma-libvirt-hook, static Swift stdlib) is called exactly as
# libvirt calls it (DOMAIN OPERATION SUB-OPERATION EXTRA, domain XML on stdin),
# and iproute2's `ip link show` is the witness of what reached the driver.
# Files (from libvirt-netdevsim.py): /test/psample.ko, /test/netdevsim.ko,
# /test/ip (iproute2), /usr/local/bin/vrdma-libvirt-hook and its libraries.
. /lib/vrdma/test-lib.sh
HOOK=/usr/local/bin/vrdma-libvirt-hook
IP=/test/ip
UUID1=6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7
UUID2=0b7d6c5e-1f2a-4b3c-9d4e-5f60718293a4

vrdma_check netdevsim-load sh -c 'insmod /test/psample.ko && insmod /test/netdevsim.ko' || exit 0
echo "10 1" > /sys/bus/netdevsim/new_device
echo 4 > /sys/bus/netdevsim/devices/netdevsim10/sriov_numvfs
PF=$(ls /sys/bus/netdevsim/devices/netdevsim10/net/ 2>/dev/null | head -n1)
echo "netdevsim PF: '$PF'"
vrdma_check netdevsim-4-vfs sh -c "$IP link show dev '$PF' | grep -q 'vf 3 '" || exit 0
$IP link show dev "$PF"

mkdir -p /etc/vrdma /tmp/x
cat > /etc/vrdma/libvirt-hook.conf <<EOF
run-dir = /run/vrdma
service-manager = process
daemon = /tmp/x/fake-daemon
start-timeout = 5
EOF
# A back-end that offers the soft provider but cannot start (its socket never
# appears): prepare must give up and undo the VF changes.
cat > /tmp/x/fake-daemon <<'EOF'
#!/bin/sh
if [ "$1" = --print-capabilities ]; then echo '{"providers": ["soft"]}'; exit 0; fi
echo "error: fake back-end cannot listen" >&2
exit 1
EOF
chmod +x /tmp/x/fake-daemon

# domain NAME UUID METADATA-BODY [QEMU-COMMANDLINE]: a domain XML on stdout.
domain() {
    cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <uuid>$2</uuid>
  <metadata>
    <vrdma:config xmlns:vrdma="urn:vrdma:libvirt-hook:1">
$3
    </vrdma:config>
  </metadata>
  <memory unit='KiB'>524288</memory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <devices/>$4
</domain>
EOF
}
vfmac() { $IP link show dev "$PF" | sed -n "s/.* vf $1 .*link\/ether \([0-9a-f:]*\).*/\1/p"; }
expect_mac() {  # NAME VF MAC
    got=$(vfmac "$2")
    if [ "$got" = "$3" ]; then vrdma_pass "$1"; else echo "VF $2 MAC is '$got', expected '$3'"; vrdma_fail "$1"; fi
}
# run_hook XML-FILE ARGS...: the hook as libvirt runs it; status in $rc, stderr in /tmp/x/err.
run_hook() {
    xml=$1; shift
    $HOOK "$@" < "$xml" 2>/tmp/x/err; rc=$?
    cat /tmp/x/err
}
one_line_with() {  # NAME TEXT...: stderr is exactly one line containing every TEXT
    name=$1; shift
    [ "$(wc -l < /tmp/x/err)" = 1 ] || { echo "stderr has $(wc -l < /tmp/x/err) lines"; vrdma_fail "$name"; return; }
    for t in "$@"; do grep -qF -- "$t" /tmp/x/err || { echo "stderr lacks '$t'"; vrdma_fail "$name"; return; }; done
    vrdma_pass "$name"
}

# ---- 1. MACs: VF 0 given, VF 1 derived from the UUID -------------------------
domain vm1 $UUID1 "      <vrdma:hostdev pf=\"$PF\" vf=\"0\" mac=\"52:54:00:aa:00:01\"/>
      <vrdma:hostdev pf=\"$PF\" vf=\"1\"/>" > /tmp/x/vm1.xml
$HOOK --dry-run /tmp/x/vm1.xml > /tmp/x/dry 2>&1; rc=$?
cat /tmp/x/dry
derived=$(sed -n 's/^  set MAC \([0-9a-f:]*\) (derived;.*/\1/p' /tmp/x/dry)
if [ $rc = 0 ] && grep -q "set MAC 52:54:00:aa:00:01 (given; now 00:00:00:00:00:00)" /tmp/x/dry && [ -n "$derived" ]; then
    vrdma_pass dry-run-plan
else
    vrdma_fail dry-run-plan
fi
vrdma_check dry-run-changed-nothing sh -c "[ '$(vfmac 0)' = 00:00:00:00:00:00 ] && [ ! -e /run/vrdma/$UUID1 ]"

t0=$(date +%s)
run_hook /tmp/x/vm1.xml vm1 prepare begin -
[ $rc = 0 ] && vrdma_pass prepare-exit-0 || vrdma_fail prepare-exit-0
echo "prepare took about $(( $(date +%s) - t0 )) s"
$IP link show dev "$PF"
expect_mac vf0-mac-set 0 52:54:00:aa:00:01
expect_mac vf1-mac-derived 1 "$derived"
vrdma_check state-recorded grep -q "^vf $PF 0 mac 00:00:00:00:00:00 52:54:00:aa:00:01$" /run/vrdma/$UUID1/state

# ---- 2. another domain may not take a VF in use --------------------------------
domain vm2 $UUID2 "      <vrdma:hostdev pf=\"$PF\" vf=\"0\"/>" > /tmp/x/vm2.xml
run_hook /tmp/x/vm2.xml vm2 prepare begin -
[ $rc = 1 ] && one_line_with vf-in-use-refused "VF 0 of $PF is in use by running domain vm1" || vrdma_fail vf-in-use-refused

# ---- 3. hooks libvirt calls that the hook ignores ---------------------------------
run_hook /tmp/x/vm1.xml vm1 started begin -
vrdma_check ignored-operation-exit-0 [ $rc = 0 ]

# ---- 4. release restores ----------------------------------------------------------
run_hook /tmp/x/vm1.xml vm1 release end destroyed
[ $rc = 0 ] && vrdma_pass release-exit-0 || vrdma_fail release-exit-0
$IP link show dev "$PF"
expect_mac vf0-mac-restored 0 00:00:00:00:00:00
expect_mac vf1-mac-restored 1 00:00:00:00:00:00
vrdma_check state-removed [ ! -e /run/vrdma/$UUID1 ]

# ---- 5. GUIDs: netdevsim (Ethernet) refuses; the MAC set first is undone -----------
# VFs 2 and 3 start from MACs set with iproute2, so "restored" means restored to those.
$IP link set dev "$PF" vf 2 mac 02:00:00:00:00:22
$IP link set dev "$PF" vf 3 mac 02:00:00:00:00:33
domain vm3 $UUID2 "      <vrdma:hostdev pf=\"$PF\" vf=\"2\" mac=\"52:54:00:aa:00:03\" node-guid=\"00:02:c9:03:00:a1:b2:c3\"/>" > /tmp/x/vm3.xml
run_hook /tmp/x/vm3.xml vm3 prepare begin -
[ $rc = 1 ] && one_line_with guid-refused-clearly "set node GUID 00:02:c9:03:00:a1:b2:c3 of VF 2 on $PF" \
    "does not support this (EOPNOTSUPP)" "VF GUIDs need an InfiniBand PF" || vrdma_fail guid-refused-clearly
expect_mac guid-refusal-restored-mac 2 02:00:00:00:00:22
vrdma_check guid-refusal-left-no-state [ ! -e /run/vrdma/$UUID2 ]

# ---- 6. the back-end cannot start: the VF is restored ------------------------------
domain vm4 $UUID2 "      <vrdma:device chardev=\"rdma0\" mac=\"52:54:00:aa:00:04\" pf=\"$PF\" vf=\"3\"/>" \
    "<qemu:commandline><qemu:arg value='-chardev'/><qemu:arg value='socket,id=rdma0,path=/run/vrdma/$UUID2/rdma0.sock'/><qemu:arg value='-device'/><qemu:arg value='vhost-user-rdma-pci,chardev=rdma0'/></qemu:commandline>" \
    > /tmp/x/vm4.xml
run_hook /tmp/x/vm4.xml vm4 prepare begin -
[ $rc = 1 ] && one_line_with backend-failure-reported "stopped before accepting on /run/vrdma/$UUID2/rdma0.sock" \
    "error: fake back-end cannot listen" || vrdma_fail backend-failure-reported
expect_mac backend-failure-restored-mac 3 02:00:00:00:00:33
vrdma_check backend-failure-left-no-state [ ! -e /run/vrdma/$UUID2 ]

# ---- 7. a VF index the PF does not have ---------------------------------------------
domain vm5 $UUID2 "      <vrdma:hostdev pf=\"$PF\" vf=\"9\"/>" > /tmp/x/vm5.xml
run_hook /tmp/x/vm5.xml vm5 prepare begin -
[ $rc = 1 ] && one_line_with vf-index-refused "$PF has 4 VFs, so VF 9 does not exist" || vrdma_fail vf-index-refused
