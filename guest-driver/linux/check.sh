#!/usr/bin/env bash
# guest-driver/linux/check.sh — the guest driver's host-side checks (no guest needed):
#   build-6.12               virtio_rdma.ko and vrdma_selftest.ko build with W=1 -Werror against
#                            the newest linux-headers-6.12.*-amd64 Debian has for bookworm
#                            (build.sh --kernel; output in build/guest-driver-check/<release>/)
#                            and carry that release's vermagic;
#   checkpatch-<file>        scripts/checkpatch.pl --strict --no-tree of the newest linux-source-*
#                            package reports nothing, for every .c/.h of the driver and selftest/.
# The default 6.1 build (the test bed's kernel) is build.sh's and runs with every kernel scenario.
# Prints VRDMA-TEST: PASS|FAIL lines and last "N passed, M failed"; exits 0 only if none failed.
# Installs linux-headers-<release> and linux-source-<series> when missing (root); checkpatch and
# its data files are cached in ${VRDMA_CACHE:-~/.cache/vrdma}/checkpatch-<series>-<key>/, key =
# the linux-source version and the files taken from it.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VRDMA_CACHE:-$HOME/.cache/vrdma}
out=$repo/build/guest-driver-check
series=6.12	# the newest kernel series Debian builds for bookworm (bookworm-security)
passed=0 failed=0
pass() { echo "VRDMA-TEST: PASS $1"; passed=$((passed + 1)); }
fail() { echo "VRDMA-TEST: FAIL $1${2:+ ($2)}"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }
log() { echo "guest-driver/linux/check.sh: $*" >&2; }
t0=$SECONDS
mkdir -p "$out"

# apt-get update once, and only when the package lists lack something this script looks for.
updated=
apt_update() { [[ -n $updated ]] || { log "apt-get update"; apt-get update -qq >&2; updated=1; }; }
apt_install() {
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ---- build against the newest 6.12 headers ------------------------------------------------
newest_headers() {
    apt-cache pkgnames "linux-headers-$series." |
        sed -n "s/^linux-headers-\(${series//./\\.}\.[0-9]*+deb[0-9]*-amd64\)$/\1/p" | sort -V | tail -n1
}
krel=$(newest_headers)
# Not installed yet: refresh the lists first, so a cold run takes the release apt can fetch.
if [[ -z $krel || ! -e /lib/modules/$krel/build/Makefile ]]; then apt_update; krel=$(newest_headers); fi
if [[ -z $krel ]]; then
    fail "build-$series" "no linux-headers-$series.*-amd64 package"
else
    log "building for $krel"
    ko_dir=$out/$krel
    if "$here/build.sh" --kernel "$krel" "$ko_dir" >"$out/build-$krel.log" 2>&1; then
        vermagic_ok=1
        for ko in "$ko_dir/virtio_rdma.ko" "$ko_dir/vrdma_selftest.ko"; do
            [[ $(modinfo -F vermagic "$ko") == "$krel "* ]] || { log "$ko: wrong vermagic"; vermagic_ok=; }
        done
        if [[ -n $vermagic_ok ]]; then pass "build-$series"; else fail "build-$series" "vermagic"; fi
    else
        tail -n 30 "$out/build-$krel.log" >&2
        fail "build-$series" "$krel, log: $out/build-$krel.log"
    fi
fi

# ---- checkpatch ---------------------------------------------------------------------------
# The script and the data files it reads from its own directory.
checkpatch_files=(checkpatch.pl spelling.txt const_structs.checkpatch)
checkpatch_dir() {  # prints the cached directory holding checkpatch_files
    local pkg src_ver key dir tarball work f members=()
    pkg=$(apt-cache pkgnames linux-source- | grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -n1)
    [[ -n $pkg ]] || { apt_update; pkg=$(apt-cache pkgnames linux-source- |
        grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -n1); }
    [[ -n $pkg ]] || { log "no linux-source-* package"; return 1; }
    dpkg -s "$pkg" >/dev/null 2>&1 || apt_install "$pkg" || { apt_update && apt_install "$pkg"; } || return 1
    command -v perl >/dev/null || apt_install perl || return 1
    src_ver=$(dpkg-query -W -f='${Version}' "$pkg")
    key=$( { echo "$src_ver"; echo "${checkpatch_files[*]}"; } | sha256sum | cut -c1-12)
    dir=$cache/checkpatch-${pkg#linux-source-}-$key
    if [[ ! -f $dir/checkpatch.pl ]]; then
        tarball=$(ls "/usr/src/$pkg.tar."* 2>/dev/null | head -n1)
        [[ -n $tarball ]] || { log "no /usr/src/$pkg.tar.*"; return 1; }
        log "extracting checkpatch from $pkg $src_ver"
        mkdir -p "$cache"
        work=$(mktemp -d "$cache/checkpatch.tmp.XXXXXX")
        for f in "${checkpatch_files[@]}"; do members+=("$pkg/scripts/$f"); done
        tar -xf "$tarball" -C "$work" --strip-components=2 "${members[@]}" || { rm -rf "$work"; return 1; }
        rm -rf "$dir"
        mv "$work" "$dir"
    fi
    echo "$dir"
}

cd "$here" || exit 1
shopt -s nullglob
sources=(*.[ch] selftest/*.[ch])
if ! cp_dir=$(checkpatch_dir); then
    fail "checkpatch" "no checkpatch.pl"
else
    # LINUX_VERSION_CODE: an out-of-tree module built for two kernels needs version tests (all
    # of them in vrdma_compat.h); the warning is for code merged into one kernel tree.
    for f in "${sources[@]}"; do
        report=$out/checkpatch-${f//\//_}.txt
        if perl "$cp_dir/checkpatch.pl" --strict --no-tree --ignore LINUX_VERSION_CODE --file "$f" \
            >"$report" 2>&1 && grep -q '^total: 0 errors, 0 warnings, 0 checks' "$report"; then
            pass "checkpatch-$f"
        else
            grep -E '^(ERROR|WARNING|CHECK)|^#[0-9]+: FILE' "$report" >&2
            fail "checkpatch-$f"
        fi
    done
fi

log "took $((SECONDS - t0)) s"
finish
