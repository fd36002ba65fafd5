#!/usr/bin/env bash
# Build netdevsim (and psample, which it needs) for the test guest's kernel.
#
# Debian's kernel config has no CONFIG_NETDEVSIM, so the module is built out
# of tree from the linux-source-6.1 package (drivers/net/netdevsim, and
# net/psample for psample.ko) against linux-headers-<guest kernel release>.
# netdevsim gives a PF with SR-IOV VFs whose MACs can be set over rtnetlink,
# which is what the libvirt hook's guest test needs:
#   insmod psample.ko; insmod netdevsim.ko
#   echo "10 1" > /sys/bus/netdevsim/new_device
#   echo 4 > /sys/bus/netdevsim/devices/netdevsim10/sriov_numvfs
#
# Usage: build-netdevsim.sh [KERNEL-RELEASE]   (default: the test guest's)
# Output (cached): ${VRDMA_CACHE:-~/.cache/vrdma}/netdevsim-<release>-<key>/{netdevsim.ko,psample.ko}
# key = this script + the linux-source version. The last stdout line is that directory.
# Installs linux-source-6.1 and linux-headers-<release> when missing (root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VRDMA_CACHE:-$HOME/.cache/vrdma}
log() { echo "build-netdevsim: $*" >&2; }

krel=${1:-}
if [[ -z $krel ]]; then
    guest=$("$here/build-guest.sh" | tail -n1)
    krel=$(cat "$guest/kernel-release")
fi
[[ $krel == 6.1.* ]] || { log "expected a 6.1 kernel release, got '$krel'"; exit 1; }

need=()
dpkg -s linux-source-6.1 >/dev/null 2>&1 || need+=(linux-source-6.1)
dpkg -s "linux-headers-$krel" >/dev/null 2>&1 || need+=("linux-headers-$krel")
for p in make gcc xz-utils kmod; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
    apt-cache policy "${need[0]}" | grep -q 'Candidate: [0-9]' || { log "apt-get update"; apt-get update -qq >&2; }
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { cat "$0"; echo "$src_version"; } | sha256sum | cut -c1-12)
out=$cache/netdevsim-$krel-$key
if [[ -f $out/netdevsim.ko && -f $out/psample.ko ]]; then echo "$out"; exit 0; fi

tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n1)
[[ -n $tarball ]] || { log "no /usr/src/linux-source-6.1.tar.*"; exit 1; }
kdir=/lib/modules/$krel/build
[[ -d $kdir ]] || kdir=/usr/src/linux-headers-$krel
[[ -f $kdir/Makefile ]] || { log "no kernel build tree for $krel ($kdir)"; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/netdevsim.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building netdevsim and psample for $krel from linux-source $src_version"
tar -xf "$tarball" -C "$work" --wildcards --strip-components=1 \
    'linux-source-6.1/drivers/net/netdevsim/*' 'linux-source-6.1/net/psample/psample.c'
mkdir -p "$work/psample"
mv "$work/net/psample/psample.c" "$work/psample/"
echo 'obj-m += psample.o' >"$work/psample/Makefile"
jobs=$(nproc)
# psample first: netdevsim links against its symbols (KBUILD_EXTRA_SYMBOLS).
make -s -j"$jobs" -C "$kdir" M="$work/psample" modules >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
make -s -j"$jobs" -C "$kdir" M="$work/drivers/net/netdevsim" CONFIG_NETDEVSIM=m \
    KBUILD_EXTRA_SYMBOLS="$work/psample/Module.symvers" modules >>"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
mkdir -p "$out"
cp "$work/psample/psample.ko" "$work/drivers/net/netdevsim/netdevsim.ko" "$out/"
log "$(modinfo -F vermagic "$out/netdevsim.ko")"
echo "$out"
