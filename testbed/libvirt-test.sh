#!/usr/bin/env bash
# testbed/libvirt-test.sh BIN_DIR — the libvirt hook under a real libvirtd.
#
# BIN_DIR holds vrdma-libvirt-hook and vhost-user-rdma (`swift build --show-bin-path`).
# Installs Debian's libvirt-daemon-system and libvirt-clients if missing, and
# uses the running libvirtd (sent SIGHUP so it sees the hook) or, without one
# (no systemd here), starts virtlogd and libvirtd itself. Installs the hook as
# docs/libvirt.md says (/etc/libvirt/hooks/qemu.d/vrdma + /etc/vrdma/libvirt-hook.conf),
# defines a TCG domain whose <emulator> is the patched QEMU (qemu/build.sh),
# with the test guest's kernel (build-guest.sh), memfd shared RAM and the
# vRDMA device on <qemu:commandline>, and checks:
#   start: libvirt ran the hook, the back-end runs and QEMU connected to it,
#          the socket belongs to QEMU's group, the guest sees PCI 1af4:106a;
#   destroy: the back-end stopped, the hook's state and socket are gone;
#   a domain whose metadata the hook refuses does not start, and virsh
#   shows the hook's one-line reason.
# Prints VRDMA-TEST: PASS|FAIL lines and last "N passed, M failed". Cleans up
# everything it installed or started (previous hook and settings are put back).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
[[ $# -eq 1 ]] || { echo "usage: $0 BIN_DIR" >&2; exit 2; }
bin=$(realpath -m "$1")
passed=0 failed=0
pass() { echo "VRDMA-TEST: PASS $1"; passed=$((passed + 1)); }
fail() { echo "VRDMA-TEST: FAIL $1${2:+ ($2)}"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }
log() { echo "libvirt-test: $*" >&2; }
# A process that exited but was not reaped (its parent, init here, may not reap) counts as gone.
alive() { [[ -r /proc/$1/stat ]] && [[ $(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1) != Z ]]; }
t0=$SECONDS

for f in vrdma-libvirt-hook vhost-user-rdma; do
    [[ -x $bin/$f ]] || { log "no $bin/$f (swift build first)"; fail "binaries"; finish; }
done
[[ $(id -u) -eq 0 ]] || { log "needs root (libvirtd, /etc/libvirt/hooks)"; fail "root"; finish; }

# ---- packages ---------------------------------------------------------------------
need=()
for p in libvirt-daemon-system libvirt-clients; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    { apt-cache policy libvirt-daemon-system | grep -q 'Candidate: [0-9]' || apt-get update -qq; } >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 || { fail "install-libvirt"; finish; }
fi

# ---- QEMU and guest, copied where QEMU's user (libvirt-qemu) can read them -----------
qemu=$("$repo/qemu/build.sh" | tail -n1)
guest=$("$here/build-guest.sh" | tail -n1)
[[ -x $qemu && -f $guest/vmlinuz ]] || { fail "qemu-and-guest"; finish; }
work=$(mktemp -d /tmp/vrdma-libvirt.XXXXXX)
chmod 755 "$work"
cp -a "$(dirname "$(dirname "$qemu")")" "$work/qemu"   # 18 MB; /root is not readable by libvirt-qemu
cp "$guest/vmlinuz" "$work/vmlinuz"
mkdir -p "$work/overlay/test"
cat >"$work/overlay/test/run.sh" <<'EOF'
#!/bin/sh
# In the libvirt-started guest: is the vhost-user-rdma PCI function there?
. /lib/vrdma/test-lib.sh
found=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x106a ] && found=$d
done
if [ -n "$found" ]; then vrdma_pass guest-sees-vrdma-device; echo "at $found"; else vrdma_fail guest-sees-vrdma-device; fi
echo VRDMA-READY
sleep 3600   # stay up: the host destroys the domain
EOF
chmod 755 "$work/overlay/test/run.sh"
"$here/mkoverlay.sh" "$work/overlay" "$work/overlay.cpio.gz"
cat "$guest/initramfs.cpio.gz" "$work/overlay.cpio.gz" >"$work/initrd.cpio.gz"

# ---- cleanup of everything below, whatever happens --------------------------------
hookdir=/etc/libvirt/hooks/qemu.d
hook=$hookdir/vrdma
conf=/etc/vrdma/libvirt-hook.conf
own_libvirtd= own_virtlogd= domains=() created_hookdir= created_confdir= created_rundir=
[[ -d /run/vrdma ]] || created_rundir=1
cleanup() {
    for d in "${domains[@]}"; do
        virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1
        virsh -q -c qemu:///system undefine "$d" >/dev/null 2>&1
    done
    # A back-end left by a failed check: the hook's own record names it.
    for s in /run/vrdma/*/state; do
        [[ -f $s ]] && grep -q "^domain vrdma-hook-test-$$" "$s" || continue
        pid=$(awk '$1 == "backend" && $2 == "process" { print $3 }' "$s")
        [[ -n $pid ]] && kill -- "-$pid" 2>/dev/null
        u=$(awk '$1 == "backend" && $2 == "systemd" { print $3 }' "$s")
        [[ -n $u ]] && systemctl stop "$u" 2>/dev/null
        rm -rf "$(dirname "$s")"
    done
    if [[ -e $hook.vrdma-test-saved ]]; then mv -f "$hook.vrdma-test-saved" "$hook"; else rm -f "$hook"; fi
    if [[ -e $conf.vrdma-test-saved ]]; then mv -f "$conf.vrdma-test-saved" "$conf"; else rm -f "$conf"; fi
    [[ -n $created_hookdir ]] && rmdir "$hookdir" /etc/libvirt/hooks 2>/dev/null
    [[ -n $created_confdir ]] && rmdir /etc/vrdma 2>/dev/null
    [[ -n $created_rundir ]] && rm -f /run/vrdma/lock && rmdir /run/vrdma 2>/dev/null
    if [[ -n ${systemd:-} ]]; then
        if [[ -e $unit_file.vrdma-test-saved ]]; then mv -f "$unit_file.vrdma-test-saved" "$unit_file"; else rm -f "$unit_file"; fi
        systemctl daemon-reload
        systemctl reload libvirtd 2>/dev/null
    elif [[ -n $own_libvirtd ]]; then
        kill "$(cat "$work/libvirtd.pid" 2>/dev/null)" 2>/dev/null
        for _ in $(seq 50); do [[ -e /proc/$(cat "$work/libvirtd.pid" 2>/dev/null) ]] || break; sleep 0.1; done
    elif pidof libvirtd >/dev/null; then
        kill -HUP "$(pidof libvirtd)" 2>/dev/null   # forget the hook again
    fi
    [[ -n $own_virtlogd ]] && kill "$(cat "$work/virtlogd.pid" 2>/dev/null)" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# ---- install the hook (docs/libvirt.md, "Install") ---------------------------------
[[ -d $hookdir ]] || { mkdir -p "$hookdir"; created_hookdir=1; }
[[ -d /etc/vrdma ]] || { mkdir -p /etc/vrdma; created_confdir=1; }
[[ -e $hook ]] && mv "$hook" "$hook.vrdma-test-saved"
[[ -e $conf ]] && mv "$conf" "$conf.vrdma-test-saved"
install -m 0755 "$bin/vrdma-libvirt-hook" "$hook"
printf 'daemon = %s\nstart-timeout = 20\n' "$bin/vhost-user-rdma" >"$conf"

# ---- libvirtd ------------------------------------------------------------------------
systemd=
if [[ -d /run/systemd/system ]]; then
    # systemd is init: the hook runs back-ends as vrdma-backend@<uuid>.service, and libvirtd is
    # systemd's (socket-activated); reload it so it sees the hook.
    systemd=1
    unit_file=/etc/systemd/system/vrdma-backend@.service
    [[ -e $unit_file ]] && mv "$unit_file" "$unit_file.vrdma-test-saved"
    install -m 0644 "$repo/dist/vrdma-backend@.service" "$unit_file"
    systemctl daemon-reload
    systemctl start libvirtd
    systemctl reload libvirtd 2>/dev/null || kill -HUP "$(pidof libvirtd)"
    sleep 1
elif pidof libvirtd >/dev/null; then
    log "using the running libvirtd (SIGHUP: it re-reads the hooks)"
    kill -HUP "$(pidof libvirtd)"
    sleep 1
else
    if ! pidof virtlogd >/dev/null; then
        virtlogd -d -p "$work/virtlogd.pid" && own_virtlogd=1
    fi
    libvirtd -d -p "$work/libvirtd.pid" && own_libvirtd=1
fi
V="virsh -c qemu:///system"
for _ in $(seq 100); do $V -q version >/dev/null 2>&1 && break; sleep 0.1; done
check libvirtd-answers $V -q version

# ---- the domain ----------------------------------------------------------------------
name=vrdma-hook-test-$$
uuid=$(cat /proc/sys/kernel/random/uuid)
sock=/run/vrdma/$uuid/rdma0.sock
domain_xml() {  # domain_xml NAME UUID PROVIDER
    cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <uuid>$2</uuid>
  <metadata>
    <vrdma:config xmlns:vrdma="urn:vrdma:libvirt-hook:1">
      <vrdma:backend provider="$3" log-level="debug"><vrdma:quota max-qp="64"/></vrdma:backend>
      <vrdma:device chardev="rdma0" mac="52:54:00:76:72:0a"/>
    </vrdma:config>
  </metadata>
  <memory unit='MiB'>512</memory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$work/vmlinuz</kernel>
    <initrd>$work/initrd.cpio.gz</initrd>
    <cmdline>console=ttyS0 loglevel=4 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>$work/qemu/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$work/serial-$1.log'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-chardev'/>
    <qemu:arg value='socket,id=rdma0,path=/run/vrdma/$2/rdma0.sock,reconnect=1'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='vhost-user-rdma-pci,chardev=rdma0,bus=pcie.0,addr=0x10'/>
  </qemu:commandline>
</domain>
EOF
}
domain_xml "$name" "$uuid" soft >"$work/domain.xml"
domains+=("$name")
check domain-defined $V -q define "$work/domain.xml"
if ! $V -q start "$name" 2>"$work/start.err"; then
    fail domain-started "$(tr '\n' ' ' <"$work/start.err")"
    finish
fi
pass domain-started
state=/run/vrdma/$uuid/state
check hook-recorded-state grep -q "^backend " "$state"
unit=$(awk '$1 == "backend" && $2 == "systemd" { print $3 }' "$state" 2>/dev/null)
if [[ -n $unit ]]; then   # systemd runs the daemon itself
    supervisor=
    daemon=$(systemctl show -p MainPID --value "$unit")
    backend_log() { journalctl -q -u "$unit" --no-pager; }
else                      # the hook's supervisor runs it
    supervisor=$(awk '$1 == "backend" && $2 == "process" { print $3 }' "$state" 2>/dev/null)
    daemon=$(pgrep -P "${supervisor:-0}" 2>/dev/null | head -n1)
    backend_log() { cat "/run/vrdma/$uuid/backend.log"; }
fi
check backend-running alive "${daemon:-0}"
check backend-args grep -qx -- "--max-qp" "/run/vrdma/$uuid/backend.args"
check socket-for-qemu-group test "$(stat -c '%a %G' "$sock" 2>/dev/null)" = "660 libvirt-qemu"
for _ in $(seq 300); do grep -q "VRDMA-READY" "$work/serial-$name.log" 2>/dev/null && break; sleep 0.2; done
check guest-sees-vrdma-device grep -q "VRDMA-TEST: PASS guest-sees-vrdma-device" "$work/serial-$name.log"
check qemu-connected-to-backend eval 'backend_log | grep -q VHOST_USER_GET_CONFIG'

$V -q destroy "$name" >/dev/null 2>&1
check domain-destroyed test "$($V domstate "$name" 2>/dev/null)" = "shut off"
for _ in $(seq 50); do alive "${daemon:-0}" || break; sleep 0.1; done
check backend-stopped eval '! alive "${daemon:-0}" && { [[ -z $supervisor ]] || ! alive "$supervisor"; }'
check hook-state-removed test ! -e "/run/vrdma/$uuid"
check socket-removed test ! -S "$sock"

# ---- a domain the hook refuses does not start --------------------------------------------
bad=vrdma-hook-test-$$-bad
bad_uuid=$(cat /proc/sys/kernel/random/uuid)
domain_xml "$bad" "$bad_uuid" ucx >"$work/bad.xml"
domains+=("$bad")
$V -q define "$work/bad.xml" >/dev/null
if $V -q start "$bad" 2>"$work/bad.err"; then
    fail refused-domain-not-started
else
    pass refused-domain-not-started
fi
cat "$work/bad.err" >&2
check refusal-reason-shown grep -q "vrdma-libvirt-hook: $bad: provider 'ucx' is not offered by $bin/vhost-user-rdma (it offers: soft, verbs)" "$work/bad.err"
check refusal-left-nothing test ! -e "/run/vrdma/$bad_uuid"

log "took $((SECONDS - t0)) s"
finish
