#!/usr/bin/env bash
# Build Debian bookworm's QEMU 7.2 with the vhost-user-rdma device patch.
#
# Output (cached): ${VRDMA_CACHE:-~/.cache/vrdma}/qemu-<key>/bin/qemu-system-x86_64
# key = sha256 of qemu/patches/*, this script and the Debian source version,
# so editing the patch or a new Debian security upload rebuilds. If the
# cached binary exists nothing is done. The last stdout line is the binary.
#
# The binary finds SeaBIOS/iPXE/linuxboot from Debian's seabios, ipxe-qemu
# and qemu-system-data packages without -L options (see the layout below).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VRDMA_CACHE:-$HOME/.cache/vrdma}
jobs=${VRDMA_JOBS:-$(nproc)}
log() { echo "qemu/build.sh: $*" >&2; }
# The build must use Debian's python3/meson, not a pyenv or venv shadowing them.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

apt_updated=
apt_update() { [[ -n $apt_updated ]] || { log "apt-get update"; apt-get update -qq >&2; apt_updated=1; }; }

# ---- deb-src entries: needed by apt-get source ---------------------------------
if ! grep -Eqs '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/*; then
    log "adding deb-src entries for bookworm"
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        # Same mirrors and suites (bookworm, -updates, -security) as the binaries.
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            >/etc/apt/sources.list.d/vrdma-deb-src.sources
    else
        sed -n 's/^deb \(.*debian.*\)$/deb-src \1/p' /etc/apt/sources.list \
            >/etc/apt/sources.list.d/vrdma-deb-src.list
    fi
    apt_update
fi
apt-cache showsrc qemu >/dev/null 2>&1 || apt_update

# ---- build dependencies + firmware ---------------------------------------------
deps=(dpkg-dev gcc ninja-build meson libglib2.0-dev libpixman-1-dev libfdt-dev libslirp-dev
      flex bison python3-venv pkg-config seabios ipxe-qemu qemu-system-data)
missing=()
for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    apt-cache policy "${missing[0]}" | grep -q 'Candidate: [0-9]' || apt_update
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

# ---- which source version -------------------------------------------------------
ver=
for v in $(apt-cache showsrc qemu | sed -n 's/^Version: //p'); do
    if [[ -z $ver ]] || dpkg --compare-versions "$v" gt "$ver"; then ver=$v; fi
done
[[ $ver == 1:7.2* ]] || { log "expected QEMU 7.2 source, found '$ver'"; exit 1; }

key=$( { cat "$here"/patches/* "$here/build.sh"; echo "$ver"; } | sha256sum | cut -c1-16)
out=$cache/qemu-$key
bin=$out/bin/qemu-system-x86_64
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi

# ---- fetch, patch, build ----------------------------------------------------------
mkdir -p "$cache"
work=$cache/qemu-$key.work
rm -rf "$work"; mkdir -p "$work"
log "building QEMU $ver in $work (log: $work/build.log)"
# dpkg-source -x (run by apt-get source) applies Debian's patch series.
if ! (cd "$work" && apt-get source -qq "qemu=$ver") >"$work/build.log" 2>&1; then
    # Stale package lists name a version the mirror no longer has: refresh
    # once and start over (the version, and so the cache key, may change).
    if [[ -z ${VRDMA_QEMU_RETRY:-} ]]; then
        log "apt-get source failed; apt-get update and retry"
        apt-get update -qq >&2
        rm -rf "$work"
        VRDMA_QEMU_RETRY=1 exec "$0" "$@"
    fi
    tail -20 "$work/build.log" >&2; exit 1
fi
set +e   # (errexit would be ignored inside a subshell that is tested with ||)
(
    set -e
    cd "$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -1)"
    for p in "$here"/patches/*.patch; do patch -p1 --forward --batch --quiet -i "$p"; done
    mkdir build && cd build
    # --without-default-features turns off every optional feature; keep only
    # what the test bed uses: TCG (+KVM where available), vhost-user, slirp.
    ../configure --meson=/usr/bin/meson \
        --prefix=/usr --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu \
        --target-list=x86_64-softmmu --without-default-features \
        --enable-tcg --enable-kvm --enable-vhost-user --enable-slirp \
        --disable-docs --disable-install-blobs --disable-user --disable-tools \
        --disable-guest-agent --disable-debug-info --enable-werror
    ninja -j"$jobs" qemu-system-x86_64
) >>"$work/build.log" 2>&1
rc=$?
set -e
if ((rc)); then tail -40 "$work/build.log" >&2; log "build failed, see $work"; exit 1; fi

built=$(find "$work" -path '*/build/qemu-system-x86_64' -type f | head -1)
# Verify the device is there with its properties before publishing the binary.
"$built" -device help 2>&1 | grep -q '"vhost-user-rdma-pci"' ||
    { log "vhost-user-rdma-pci missing from -device help"; exit 1; }
props=$("$built" -device vhost-user-rdma-pci,help 2>&1)
for p in chardev num-queues queue-size config-size vectors; do
    grep -q "^  $p=" <<<"$props" || { log "property $p missing"; exit 1; }
done

# QEMU finds its data relative to its own location (<prefix>/bin ->
# <prefix>/share/qemu, ...), so give the cache dir a /usr-like layout that
# points at Debian's firmware packages.
mkdir -p "$out/bin" "$out/share" "$out/lib/ipxe"
ln -sfn /usr/share/qemu "$out/share/qemu"
ln -sfn /usr/share/seabios "$out/share/seabios"
ln -sfn /usr/lib/ipxe/qemu "$out/lib/ipxe/qemu"
cp "$built" "$bin.tmp" && mv "$bin.tmp" "$bin"
printf 'debian-source=qemu %s\npatches=%s\n' "$ver" "$(cd "$here/patches" && ls | tr '\n' ' ')" >"$out/build-info.txt"
rm -rf "$work"
log "done"
echo "$bin"
