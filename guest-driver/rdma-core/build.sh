#!/usr/bin/env bash
# Build rdma-core 59 with the virtio_rdma provider, as an overlay for the test guests.
#
# Output (cached): ${VRDMA_CACHE:-~/.cache/vrdma}/rdma-core-<key>/overlay/, a tree with Debian's
# paths that replaces the guest's rdma-core 44 libraries (see README.md, "The overlay"), and
# beside it tests/ with the guest test programs (vrdma-verbs-check, vrdma-peer-loss). key =
# sha256 of this directory (build.sh, the provider, the patches), the two ABI headers and the
# rdma-core version; a cache hit prints the path and does nothing else. The last stdout line is
# the overlay directory.
#
# Source: Debian's rdma-core source package is not served here, but PyPI's sdist of pyverbs
# carries the whole rdma-core tree (pyverbs-<v>/rdma-core). It is downloaded once to
# ${VRDMA_CACHE}/downloads/ and checked against the sha256 below.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VRDMA_CACHE:-$HOME/.cache/vrdma}
jobs=${VRDMA_JOBS:-$(nproc)}
log() { echo "rdma-core/build.sh: $*" >&2; }
# Debian's python3/pip and cmake, not a pyenv or venv shadowing them.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

version=59.0
pabi=59                        # IBVERBS_PABI_VERSION of that release: lib<provider>-rdmav59.so
sdist_name=pyverbs-$version.tar.gz
sdist_sha256=b30d56bb620b3d3b4301876f9a04c964be1c76cc6553a451e1465f1c6ac9f20e
multiarch=x86_64-linux-gnu     # the guest is Debian amd64: /usr/lib/x86_64-linux-gnu

# ---- cache key ----------------------------------------------------------------------------
# Every file of this directory by path and content, then the headers the provider includes.
key=$( { cd "$here" && find . -type f -print0 | LC_ALL=C sort -z |
           while IFS= read -r -d '' f; do echo "== $f"; cat "$f"; done
         cat "$repo"/guest-driver/include/*.h "$repo/abi/virtio_rdma.h"
         echo "rdma-core=$version"; } | sha256sum | cut -c1-16)
out=$cache/rdma-core-$key
if [[ -f $out/build-info.txt && -d $out/overlay ]]; then echo "$out/overlay"; exit 0; fi

# ---- one build per key at a time ------------------------------------------------------------
# Scenarios may call this concurrently: the first builds, the others wait and take its result.
mkdir -p "$cache"
exec 9>"$cache/rdma-core-$key.lock"
flock 9
if [[ -f $out/build-info.txt && -d $out/overlay ]]; then echo "$out/overlay"; exit 0; fi

# ---- host packages (installed only when missing) -------------------------------------------
apt_updated=
apt_update() { [[ -n $apt_updated ]] || { log "apt-get update"; apt-get update -qq >&2; apt_updated=1; }; }
deps=(gcc libc6-dev cmake ninja-build pkg-config libnl-3-dev libnl-route-3-dev libudev-dev
      python3 python3-pip binutils patch)
missing=()
for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    apt-cache policy "${missing[0]}" | grep -q 'Candidate: [0-9]' || apt_update
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

# ---- source ---------------------------------------------------------------------------------
downloads=$cache/downloads
sdist=$downloads/$sdist_name
mkdir -p "$downloads"
if [[ ! -f $sdist ]]; then
    # pip prepares the sdist's metadata before it saves the file, which needs its build
    # requirements (scikit-build-core, cython): taken as wheels, about 10 s (building those
    # from source too, with --no-binary :all:, takes minutes).
    log "downloading $sdist_name from PyPI (pip download)"
    tmp=$(mktemp -d "$downloads/pip.XXXXXX")
    if ! python3 -m pip download --no-deps --no-binary pyverbs -d "$tmp" "pyverbs==$version" \
            >"$tmp/pip.log" 2>&1 || [[ ! -f $tmp/$sdist_name ]]; then
        tail -20 "$tmp/pip.log" >&2
        log "pip download failed (log: $tmp/pip.log)"
        exit 1
    fi
    mv "$tmp/$sdist_name" "$sdist"
    rm -rf "$tmp"
fi
if [[ $(sha256sum "$sdist" | cut -d' ' -f1) != "$sdist_sha256" ]]; then
    log "$sdist: sha256 is not $sdist_sha256 (remove the file to download it again)"
    exit 1
fi

# ---- unpack, add the provider, build --------------------------------------------------------
work=$cache/rdma-core-$key.work
rm -rf "$work"; mkdir -p "$work"
log "building rdma-core $version with virtio_rdma in $work (log: $work/build.log)"
src=$work/src
set +e   # (errexit would be ignored inside a subshell that is tested with ||)
(
    set -ex
    tar -xzf "$sdist" -C "$work" "pyverbs-$version/rdma-core"
    mv "$work/pyverbs-$version/rdma-core" "$src"
    rmdir "$work/pyverbs-$version"
    cp -r "$here/virtio_rdma" "$src/providers/virtio_rdma"
    cp "$repo/abi/virtio_rdma.h" "$repo/guest-driver/include/virtio_rdma_uverbs.h" \
        "$src/providers/virtio_rdma/"
    for p in "$here"/patches/*.patch; do patch -d "$src" -p1 --forward --batch -i "$p"; done
    # Debian's layout, so the compiled-in provider directory (VERBS_PROVIDER_DIR =
    # <libdir>/libibverbs) and config directory (/etc/libibverbs.d) are the guest's.
    cmake -S "$src" -B "$work/build" -GNinja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR="lib/$multiarch" \
        -DCMAKE_INSTALL_SYSCONFDIR=/etc -DCMAKE_INSTALL_RUNDIR=/run \
        -DNO_PYVERBS=1 -DNO_MAN_PAGES=1 -DENABLE_STATIC=0
    ninja -C "$work/build" -j"$jobs"
    DESTDIR="$work/install" ninja -C "$work/build" install
) >"$work/build.log" 2>&1
rc=$?
set -e
if ((rc)); then tail -40 "$work/build.log" >&2; log "build failed, see $work"; exit 1; fi

# ---- the overlay ------------------------------------------------------------------------------
# Only what replaces Debian's rdma-core 44 in the guest: Debian's tools are linked against the
# public ABI (IBVERBS_1.x, RDMACM_1.x, MLX5_1.x, EFA_1.x) and run on these libraries; Debian's
# providers and direct-verbs libraries are built for libibverbs 44's private ABI and do not load
# in 59, hence rxe here and the direct-verbs libraries perftest links (libmlx5, libefa; libmlx4
# and libmana come along, being in Debian's ibverbs-providers too). Their provider modules are
# symlinks to those libraries, so those drivers load as well.
inst=$work/install
ov=$work/overlay
libdir=usr/lib/$multiarch
libs=(libibverbs.so.1 librdmacm.so.1 libmlx4.so.1 libmlx5.so.1 libefa.so.1 libmana.so.1)
providers=(virtio_rdma rxe mlx4 mlx5 efa mana)
mkdir -p "$ov/$libdir/libibverbs" "$ov/etc/libibverbs.d"
for l in "${libs[@]}"; do
    real=$(readlink "$inst/$libdir/$l")
    [[ -f $inst/$libdir/$real ]] || { log "$l not installed"; exit 1; }
    cp "$inst/$libdir/$real" "$ov/$libdir/$real"
    ln -s "$real" "$ov/$libdir/$l"
done
for p in "${providers[@]}"; do
    m=lib$p-rdmav$pabi.so
    cp -P "$inst/$libdir/libibverbs/$m" "$ov/$libdir/libibverbs/$m"
    [[ -e $ov/$libdir/libibverbs/$m ]] || { log "provider $m does not resolve in the overlay"; exit 1; }
    cp "$inst/etc/libibverbs.d/$p.driver" "$ov/etc/libibverbs.d/"
done
# Every other driver file of rdma-core (a superset of Debian 44's) becomes a comment: the guest
# keeps Debian's file of that name otherwise, and libibverbs 59 would warn on every start that
# it cannot load lib<name>-rdmav59.so.
for f in "$inst"/etc/libibverbs.d/*.driver; do
    [[ -e $ov/etc/libibverbs.d/${f##*/} ]] && continue
    echo "# provider not in the vrdma rdma-core $version overlay" >"$ov/etc/libibverbs.d/${f##*/}"
done
# Of Debian's tools only ibv_devinfo uses libibverbs' private ABI (IBVERBS_PRIVATE_34): it is
# replaced by rdma-core's own; every other Debian binary in the guest runs as it is.
tools=(ibv_devinfo)
mkdir -p "$ov/usr/bin"
for t in "${tools[@]}"; do cp "$inst/usr/bin/$t" "$ov/usr/bin/$t"; done
find "$ov" -type f \( -name '*.so*' -o -path '*/usr/bin/*' \) -exec strip --strip-unneeded {} +

# Every library the overlay needs is in it or in the base guest (glibc, libnl).
guest_libs="libc.so.6 ld-linux-x86-64.so.2 libnl-3.so.200 libnl-route-3.so.200"
while IFS= read -r f; do
    for n in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [[ -e $ov/$libdir/$n || " $guest_libs " == *" $n "* ]] ||
            { log "${f#"$ov"/} needs $n, which the guest does not have"; exit 1; }
    done
done < <(find "$ov" -type f \( -name '*.so*' -o -path '*/usr/bin/*' \))
# The provider matches the virtio device (its modalias pattern is in the module).
grep -qa 'virtio:d0000002Av\*' "$ov/$libdir/libibverbs/libvirtio_rdma-rdmav$pabi.so" ||
    { log "libvirtio_rdma-rdmav$pabi.so lacks its match table"; exit 1; }

# The test programs of tests/ (not in the overlay: a scenario copies them into the guest), built
# against the headers and library just installed.
mkdir -p "$work/tests"
for c in "$here"/tests/*.c; do
    gcc -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror -I"$inst/usr/include" \
        -o "$work/tests/$(basename "$c" .c)" "$c" -L"$inst/$libdir" -libverbs >>"$work/build.log" 2>&1 ||
        { tail -20 "$work/build.log" >&2; log "$c does not compile, see $work"; exit 1; }
done

rm -rf "$out"; mkdir -p "$out"
mv "$ov" "$out/overlay"
mv "$work/tests" "$out/tests"
printf 'rdma-core=%s (PyPI %s, sha256 %s)\nprovider=virtio_rdma key=%s\npatches=%s\n' \
    "$version" "$sdist_name" "$sdist_sha256" "$key" "$(cd "$here/patches" && ls | tr '\n' ' ')" \
    >"$out/build-info.txt"
rm -rf "$work" "$cache/rdma-core-$key.lock"
log "done: $(du -sh "$out/overlay" | cut -f1) overlay"
echo "$out/overlay"
