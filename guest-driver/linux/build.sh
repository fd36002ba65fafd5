#!/usr/bin/env bash
# guest-driver/linux/build.sh — builds virtio_rdma.ko (and the kernel-verbs self test,
# vrdma_selftest.ko) for one kernel release, by default the testbed guest's.
#
#   guest-driver/linux/build.sh [--kernel RELEASE] [OUT_DIR]
#
# RELEASE defaults to the testbed guest's kernel (testbed/build-guest.sh, kernel-release).
# linux-headers-<release> is installed with apt-get if missing. Sources are copied into
# OUT_DIR/src (default: build/guest-driver in the repository root, which is gitignored) with the
# repository layout the Kbuild file expects, and built there with W=1 and -Werror, so the source
# tree stays clean. Prints the path of virtio_rdma.ko as its last stdout line; the self test
# module lies next to it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "guest-driver/linux/build.sh: $*" >&2; }
usage() { echo "usage: $0 [--kernel RELEASE] [OUT_DIR]" >&2; exit 2; }

krel=
while (($#)); do
    case $1 in
    --kernel) (($# >= 2)) || usage; krel=$2; shift 2 ;;
    -*) usage ;;
    *) break ;;
    esac
done
(($# <= 1)) || usage
out=$(realpath -m "${1:-$repo/build/guest-driver}")

if [[ -z $krel ]]; then
    guest=$("$repo/testbed/build-guest.sh" | tail -n1)
    krel=$(cat "$guest/kernel-release")
fi
kdir=/lib/modules/$krel/build
if [[ ! -e $kdir/Makefile ]]; then
    log "installing linux-headers-$krel"
    sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
    apt-cache policy "linux-headers-$krel" | grep -q 'Candidate: [0-9]' || $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "linux-headers-$krel" >&2
fi
if ! command -v make >/dev/null || ! command -v gcc >/dev/null; then
    log "installing make gcc"
    sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
    apt-cache policy gcc | grep -q 'Candidate: [0-9]' || $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq make gcc >&2
fi

# Mirror the parts of the repository the build needs: the driver, its self test, both ABIs.
src=$out/src
rm -rf "$src"
mkdir -p "$src/guest-driver/linux/selftest" "$src/guest-driver/include" "$src/abi"
cp "$here"/Kbuild "$here"/*.c "$here"/*.h "$src/guest-driver/linux/"
cp "$here"/selftest/Kbuild "$here"/selftest/*.c "$src/guest-driver/linux/selftest/"
cp "$repo/guest-driver/include/virtio_rdma_uverbs.h" "$src/guest-driver/include/"
cp "$repo/abi/virtio_rdma.h" "$src/abi/"

jobs=$(nproc)
log "building for $krel in $src"
make -s -C "$kdir" M="$src/guest-driver/linux" W=1 -j"$jobs" modules >&2
make -s -C "$kdir" M="$src/guest-driver/linux/selftest" W=1 -j"$jobs" modules >&2
cp "$src/guest-driver/linux/virtio_rdma.ko" "$src/guest-driver/linux/selftest/vrdma_selftest.ko" "$out/"
echo "$krel" >"$out/kernel-release"
echo "$out/virtio_rdma.ko"
