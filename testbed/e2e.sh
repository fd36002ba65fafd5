#!/usr/bin/env bash
# testbed/e2e.sh BIN_DIR — the guest test suite (`make test` runs it).
#
# BIN_DIR holds vhost-user-rdma (`swift build --show-bin-path`). Builds or
# reuses the cached QEMU (qemu/build.sh) and test guest (build-guest.sh),
# runs every suite scenario under TCG, prints each scenario's results and
# timings, and ends with exactly "N passed, M failed": the scenarios'
# VRDMA-TEST lines, plus one failure per scenario that crashed or was killed
# at its time limit. Exit status 0 only if nothing failed.
# Results: ${VRDMA_RESULTS:-$TMPDIR/vrdma-results/e2e-<time>}/<scenario>/.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
[[ $# -eq 1 ]] || { echo "usage: $0 BIN_DIR" >&2; exit 2; }
daemon=$(realpath -m "$1/vhost-user-rdma")
[[ -x $daemon ]] || { echo "e2e: no $daemon (swift build first)" >&2; echo "0 passed, 1 failed"; exit 1; }

t_start=$SECONDS
elapsed() { echo "$((SECONDS - $1))s"; }

# ---- host tools: python3 (runner), gcc + static libc (virtio-probe) ----------
need=()
command -v python3 >/dev/null || need+=(python3)
command -v gcc >/dev/null || need+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
if ((${#need[@]})); then
    echo "e2e: installing ${need[*]}"
    sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
    if ! { $sudo apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"; }; then
        echo "e2e: cannot install ${need[*]}"; echo "0 passed, 1 failed"; exit 1
    fi
fi

# ---- QEMU and guest (cached; a cold build takes minutes) ---------------------
t=$SECONDS
VRDMA_QEMU=$("$repo/qemu/build.sh" | tail -n1)
if [[ ! -x $VRDMA_QEMU ]]; then echo "e2e: qemu/build.sh failed"; echo "0 passed, 1 failed"; exit 1; fi
echo "e2e: QEMU  $VRDMA_QEMU ($(elapsed $t))"
t=$SECONDS
VRDMA_GUEST=$("$here/build-guest.sh" | tail -n1)
if [[ ! -f $VRDMA_GUEST/vmlinuz ]]; then echo "e2e: build-guest.sh failed"; echo "0 passed, 1 failed"; exit 1; fi
echo "e2e: guest $VRDMA_GUEST ($(elapsed $t))"
export VRDMA_QEMU VRDMA_GUEST

results=${VRDMA_RESULTS:-${TMPDIR:-/tmp}/vrdma-results/e2e-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$results"

# ---- scenarios (each ends with run.py's "N passed, M failed (...)" line) --------
names=(rxe-pingpong vrdma-smoke vrdma-kernel vrdma-kernel-disconnect vrdma-verbs vrdma-kernel-uverbs vrdma-rdmacm vrdma-reboot-traffic verbs-provider-rxe libvirt-netdevsim)
scenario() {  # scenario NAME: run it
    case $1 in
    rxe-pingpong) "$here/run.py" "$here/scenarios/rxe-pingpong.json" --results "$results/$1" ;;
    vrdma-smoke)  "$here/scenarios/vrdma-smoke.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    vrdma-kernel) "$here/scenarios/vrdma-kernel.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    vrdma-kernel-disconnect) "$here/scenarios/vrdma-kernel-disconnect.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    vrdma-verbs)  "$here/scenarios/vrdma-verbs.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    vrdma-kernel-uverbs) "$here/scenarios/vrdma-kernel-uverbs.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    vrdma-rdmacm) "$here/scenarios/vrdma-rdmacm.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    vrdma-reboot-traffic) "$here/scenarios/vrdma-reboot-traffic.py" --daemon-bin "$daemon" --results "$results/$1" ;;
    verbs-provider-rxe) "$here/scenarios/verbs-provider-rxe.py" --results "$results/$1" ;;
    libvirt-netdevsim) "$here/scenarios/libvirt-netdevsim.py" --results "$results/$1" ;;
    esac
}
export -f scenario; export here results daemon
limit=600   # seconds per scenario, on top of the runner's own timeouts

passed=0 failed=0 summary=()
for name in "${names[@]}"; do
    echo "==== $name"
    t=$SECONDS
    # shellcheck disable=SC2016  # $0 is expanded by the inner bash
    timeout -k 10 "$limit" bash -c 'scenario "$0"' "$name" 2>&1 | tee "$results/$name.log"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$results/$name.log" | tail -n1)
    p=0 f=0
    [[ -n $line ]] && read -r p _ f _ <<<"${line//,/}"
    note=
    if [[ -z $line || $rc -eq 124 || $rc -eq 137 ]]; then
        f=$((f + 1)); note=" (crashed or killed: rc=$rc)"
    elif [[ $rc -ne 0 && $f -eq 0 ]]; then
        f=1; note=" (rc=$rc)"
    fi
    passed=$((passed + p)); failed=$((failed + f))
    summary+=("$(printf '  %-24s %3d passed, %d failed  %5s%s' "$name" "$p" "$f" "$(elapsed $t)" "$note")")
done

echo "==== e2e summary (results in $results)"
printf '%s\n' "${summary[@]}"
echo "  total time $(elapsed $t_start)"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
