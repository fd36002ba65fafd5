#!/usr/bin/env bash
# mkoverlay.sh DIR OUT.cpio.gz
# Pack DIR as an initramfs overlay. The kernel unpacks concatenated cpio
# archives in order, later files replacing earlier ones, so
#   cat base/initramfs.cpio.gz OUT.cpio.gz > guest.cpio.gz
# (or QEMU -initrd with the concatenation) adds DIR's tree on top of the
# base guest, e.g. DIR/test/run.sh becomes /test/run.sh.
# Files are stored owned by root; modes are kept.
set -euo pipefail
[[ $# -eq 2 && -d $1 ]] || { echo "usage: $0 DIR OUT.cpio.gz" >&2; exit 2; }
dir=$1
out=$(realpath -m "$2")
(cd "$dir" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --quiet --reproducible -R 0:0) | gzip -6n >"$out"
