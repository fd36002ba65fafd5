# Helpers for guest test scripts: `. /lib/vrdma/test-lib.sh`.
# Result lines are what testbed/run.py parses from the serial console.

vrdma_pass() { echo "VRDMA-TEST: PASS $1"; }
vrdma_fail() { echo "VRDMA-TEST: FAIL $1"; }

# vrdma_check NAME CMD...: run CMD, report PASS/FAIL NAME, return CMD's status.
# CMD's output is kept on the console so a failure can be diagnosed.
vrdma_check() {
    name=$1; shift
    if "$@"; then vrdma_pass "$name"; return 0; fi
    rc=$?
    vrdma_fail "$name"
    return $rc
}

# vrdma_retry SECONDS CMD...: rerun CMD once a second until it succeeds.
vrdma_retry() {
    t=$1; shift
    while ! "$@"; do
        t=$((t-1)); [ $t -gt 0 ] || return 1
        sleep 1
    done
}

