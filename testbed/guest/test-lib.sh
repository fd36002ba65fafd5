# Helpers for guest test scripts: `. /lib/vrdma/test-lib.sh`.
# Result lines are what testbed/run.py parses from the serial console.

# Each result is also tallied in /run/vrdma-results: init reports the failures with VRDMA-DONE, so
# run.py counts a FAIL line that kernel messages garbled on the console.
vrdma_pass() { echo "VRDMA-TEST: PASS $1"; echo P >>/run/vrdma-results 2>/dev/null; }
vrdma_fail() { echo "VRDMA-TEST: FAIL $1"; echo F >>/run/vrdma-results 2>/dev/null; }

# vrdma_check NAME CMD...: run CMD, report PASS/FAIL NAME, return CMD's status.
# CMD's output is kept on the console so a failure can be diagnosed.
vrdma_check() {
    name=$1; shift
    "$@"
    rc=$?
    if [ $rc -eq 0 ]; then vrdma_pass "$name"; else vrdma_fail "$name"; fi
    return $rc
}

# vrdma_check_dmesg_clean [NAME]: PASS NAME (default dmesg-clean) if the kernel log has no line
# that means the kernel went wrong; otherwise print them and the log's tail, and FAIL. A user
# process's fault ("traps: <comm>[<pid>] general protection fault ... in <file>") is not one.
vrdma_check_dmesg_clean() {
    bad=$(dmesg | grep -E "BUG:|WARNING:|Oops|general protection|Call Trace|kmemleak|refcount_t:|UBSAN|KASAN" |
        grep -v "traps: ")
    if [ -n "$bad" ]; then
        echo "$bad"
        dmesg | tail -80
    fi
    vrdma_check "${1:-dmesg-clean}" test -z "$bad"
}

# vrdma_retry SECONDS CMD...: rerun CMD once a second until it succeeds.
vrdma_retry() {
    t=$1; shift
    while ! "$@"; do
        t=$((t-1)); [ $t -gt 0 ] || return 1
        sleep 1
    done
}


# vrdma_roce_gid DEV: print the index of DEV's RoCE v2 GID made from an IPv4 address
# (::ffff:a.b.c.d). Its index depends on how many IPv6 addresses the netdev has.
vrdma_roce_gid() {
    port=/sys/class/infiniband/$1/ports/1
    for f in "$port"/gids/*; do
        i=${f##*/}
        case "$(cat "$f" 2>/dev/null)" in
        0000:0000:0000:0000:0000:ffff:*)
            [ "$(cat "$port/gid_attrs/types/$i" 2>/dev/null)" = "RoCE v2" ] && { echo "$i"; return 0; } ;;
        esac
    done
    return 1
}

# vrdma_load_driver KO: insmod the vrdma driver and wait until vrdma0's port is ACTIVE and
# has its IPv4 RoCE v2 GID (ib_core adds GIDs from the paired netdev asynchronously).
vrdma_load_driver() {
    insmod "$1" || return 1
    vrdma_retry 30 grep -q ACTIVE /sys/class/infiniband/vrdma0/ports/1/state || return 1
    vrdma_retry 30 vrdma_roce_gid vrdma0 >/dev/null
}
