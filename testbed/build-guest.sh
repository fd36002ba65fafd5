#!/usr/bin/env bash
# Build the vrdma test guest from Debian packages only: a Debian 6.1 kernel
# (vmlinuz) and a busybox initramfs with the virtio/RDMA modules and the
# rdma-core user space. No root filesystem, no network installer.
#
# Output (cached): ${VRDMA_CACHE:-~/.cache/vrdma}/guest-<key>/
#   vmlinuz  initramfs.cpio.gz  kernel-release  packages.txt
# key = sha256 of the testbed guest scripts + the exact package versions, so
# a new Debian kernel or rdma-core upload gives a new guest automatically.
# The last stdout line is that directory.
#
# The kernel ABI chosen is the newest linux-image-6.1.0-N-amd64 whose
# linux-headers-6.1.0-N-amd64 has the same candidate version: out-of-tree
# modules built later against those headers load in this guest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VRDMA_CACHE:-$HOME/.cache/vrdma}
log() { echo "build-guest: $*" >&2; }

# ---- host tools (installed quietly, only when missing) ----------------------
# kmod: depmod (Debian's linux-image ships no modules.dep);
# binutils: readelf for shared-library closure; cpio/gzip: the archive.
need=()
for p in kmod binutils cpio gzip; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# apt-get update only when the package lists are missing or stale for us.
if ! apt-cache show busybox-static >/dev/null 2>&1 || ((${#need[@]})); then
    log "apt-get update"
    apt-get update -qq >&2
fi
if ((${#need[@]})); then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

# "pkg version" per argument, one apt-cache call (it is slow per call).
candidates() {
    apt-cache policy "$@" 2>/dev/null |
        awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) } /^  Candidate:/ { print p, $2 }'
}

# ---- choose the kernel -------------------------------------------------------
abis=$(apt-cache pkgnames linux-image-6.1.0- |
       sed -n 's/^linux-image-\(6\.1\.0-[0-9]*\)-amd64$/\1/p' | sort -rV)
declare -A cand=()
# shellcheck disable=SC2046  # one word per package name, on purpose
while read -r p v; do cand[$p]=$v; done < <(candidates $(for a in $abis; do
    echo "linux-image-$a-amd64 linux-headers-$a-amd64"; done))
kabi=
for abi in $abis; do
    iv=${cand[linux-image-$abi-amd64]:-} hv=${cand[linux-headers-$abi-amd64]:-}
    if [[ -n $iv && $iv != "(none)" && $iv == "$hv" ]]; then kabi=$abi; break; fi
done
[[ -n $kabi ]] || { log "no linux-image-6.1.0-*-amd64 with matching headers"; exit 1; }
krel=$kabi-amd64

# Packages extracted whole (minus /usr/share) into the initramfs ...
# libgcc-s1: glibc dlopens libgcc_s for pthread_exit/cancel (rping), so no ELF closure finds it.
# libstdc++6: Swift executables built with --static-swift-stdlib still link it (verbs-provider-rxe).
tool_pkgs=(libibverbs1 ibverbs-providers ibverbs-utils librdmacm1 rdmacm-utils perftest libgcc-s1 libstdc++6)
# ... and packages only used as a pool to resolve shared libraries from.
lib_pkgs=(libnl-3-200 libnl-route-3-200 libibumad3 libpci3 libmnl0 libbsd0 libmd0 libcap2 libudev1 zlib1g)
# iproute2 only for /usr/bin/rdma (`rdma link add ... type rxe`); busybox has ip.
pkgs=("linux-image-$krel" busybox-static iproute2 "${tool_pkgs[@]}" "${lib_pkgs[@]}")

versions=$(candidates "${pkgs[@]}" | awk '{ print $1 "=" $2 }')
[[ $(wc -l <<<"$versions") -eq ${#pkgs[@]} ]] || { log "apt-cache knows not all of: ${pkgs[*]}"; exit 1; }
# glibc comes from the host (see below), so its version is part of the key too.
versions+=$'\n'"host-libc6=$(dpkg-query -W -f='${Version}' libc6)"
if grep -q '=$\|=(none)$' <<<"$versions"; then
    log "packages without an installable candidate:"; grep '=$\|=(none)$' <<<"$versions" >&2; exit 1
fi

key=$( { cat "$here/build-guest.sh" "$here/guest/init" "$here/guest/test-lib.sh"; echo "$versions"; } |
       sha256sum | cut -c1-16)
out=$cache/guest-$key
if [[ -f $out/initramfs.cpio.gz && -f $out/vmlinuz ]]; then
    echo "$out"; exit 0
fi

log "building $out (kernel $krel)"
mkdir -p "$cache"
work=$(mktemp -d "$cache/guest-$key.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/pool" "$work/root"

# ---- download + extract --------------------------------------------------------
# shellcheck disable=SC2046  # one pkg=version word each
if ! (cd "$work/debs" && apt-get download -qq $(grep -v '^host-' <<<"$versions")) 2>"$work/download.log"; then
    grep -v unsandboxed "$work/download.log" >&2 || true
    # Stale package lists name versions the mirror no longer has: refresh
    # once and start over (versions, and so the cache key, may change).
    [[ -z ${VRDMA_GUEST_RETRY:-} ]] || exit 1
    log "download failed; apt-get update and retry"
    apt-get update -qq >&2
    rm -rf "$work"; trap - EXIT
    VRDMA_GUEST_RETRY=1 exec "$0" "$@"
fi
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$work/pool"; done
pool=$work/pool
root=$work/root

# ---- kernel + modules ------------------------------------------------------------
cp "$pool/boot/vmlinuz-$krel" "$work/vmlinuz"
depmod -b "$pool" "$krel"
moddir=$pool/lib/modules/$krel
# Roots in load order. crc32_generic is not a symbol dependency of rdma_rxe
# (rxe asks the crypto API for "crc32"), so it has to come first explicitly.
# virtio_blk: a tiny scratch disk survives a guest reboot (vrdma-smoke's boot marker).
roots=(virtio_ring virtio virtio_pci failover net_failover virtio_net virtio_blk
       crc32_generic udp_tunnel ip6_udp_tunnel configfs
       ib_core ib_uverbs iw_cm ib_cm rdma_cm rdma_ucm rdma_rxe)
declare -A seen=()
order=()
modpath() { # module name -> path relative to $moddir (names: - and _ are equal)
    local n=${1//-/_}
    awk -F: -v n="$n" '{ b=$1; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b); gsub(/-/, "_", b);
                         if (b == n) { print $1; exit } }' "$moddir/modules.dep"
}
for m in "${roots[@]}"; do
    p=$(modpath "$m")
    if [[ -z $p ]]; then
        grep -q "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" || { log "module $m not found"; exit 1; }
        continue   # built into the kernel
    fi
    # modules.dep lists all transitive deps, to be loaded last-to-first.
    deps=$(grep "^$p:" "$moddir/modules.dep" | cut -d: -f2)
    for q in $(tr ' ' '\n' <<<"$deps" | tac) "$p"; do
        [[ -n ${seen[$q]:-} ]] && continue
        seen[$q]=1; order+=("$q")
    done
done
mkdir -p "$root/etc/vrdma" "$root/lib/modules/$krel"
for q in "${order[@]}"; do
    mkdir -p "$root/lib/modules/$krel/$(dirname "$q")"
    cp "$moddir/$q" "$root/lib/modules/$krel/$q"
done
printf '%s\n' "${order[@]}" >"$root/etc/vrdma/modules.order"
# Keep modules.dep & co so tests can modprobe extra modules they add.
cp "$moddir"/modules.{dep,alias,symbols,builtin,order} "$root/lib/modules/$krel/"

# ---- user space --------------------------------------------------------------------
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,test,lib/vrdma}
cp "$pool/bin/busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list-full); do
    [[ -e $root/$a ]] || ln -s /bin/busybox "$root/$a"
done
for p in "${tool_pkgs[@]}"; do
    dpkg-deb --fsys-tarfile "$work"/debs/"${p}"_*.deb | tar -x -C "$root" --exclude='./usr/share'
done
cp "$pool/usr/bin/rdma" "$root/usr/bin/rdma"
install -m 0755 "$here/guest/init" "$root/init"
install -m 0644 "$here/guest/test-lib.sh" "$root/lib/vrdma/test-lib.sh"
# The kernel opens /dev/console before /init runs (devtmpfs comes later).
# (Needs root; without it the kernel's built-in initramfs provides one.)
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"

# Shared-library closure: look in the extracted packages first, then the host
# (only glibc is expected from there). Copy the file and its SONAME symlink.
libdirs=(lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64)
find_lib() {
    local d
    for d in "${libdirs[@]}"; do [[ -e $root/$d/$1 ]] && { echo "$root/$d/$1"; return; }; done
    for d in "${libdirs[@]}"; do [[ -e $pool/$d/$1 ]] && { echo "$pool/$d/$1"; return; }; done
    for d in "${libdirs[@]}"; do [[ -e /$d/$1 ]] && { echo "/$d/$1"; return; }; done
}
declare -A done_lib=()
queue=$(find "$root" -type f \( -perm -u+x -o -name '*.so*' \) ! -name '*.ko' ! -path "$root/bin/busybox")
queue+=$'\n'"ld-linux-x86-64.so.2"
while [[ -n $queue ]]; do
    next=
    for f in $queue; do
        if [[ $f != /* ]]; then          # a SONAME to provide
            [[ -n ${done_lib[$f]:-} ]] && continue
            done_lib[$f]=1
            src=$(find_lib "$f")
            [[ -n $src ]] || { log "cannot resolve shared library $f"; exit 1; }
            case $src in "$root"/*) continue ;; esac
            rel=${src#"$pool"}; rel=${rel#/}
            mkdir -p "$root/$(dirname "$rel")"
            cp -L "$src" "$root/$rel"
            next+=$'\n'"$root/$rel"
            continue
        fi
        readelf -h "$f" >/dev/null 2>&1 || continue   # scripts etc.
        next+=$'\n'$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    done
    queue=$(grep -v '^$' <<<"$next" || true)
done
mkdir -p "$root/lib64"
[[ -e $root/lib64/ld-linux-x86-64.so.2 ]] ||
    ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"

# ---- archive ----------------------------------------------------------------------
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --quiet --reproducible) | gzip -6n >"$work/initramfs.cpio.gz"
echo "$krel" >"$work/kernel-release"
echo "$versions" >"$work/packages.txt"

mkdir -p "$out"
mv "$work/vmlinuz" "$work/initramfs.cpio.gz" "$work/kernel-release" "$work/packages.txt" "$out/"
log "initramfs $(du -h "$out/initramfs.cpio.gz" | cut -f1)"
echo "$out"
