#!/usr/bin/env bash
# make demo: start the daemon on a fresh socket, drive it with the in-process front-end, stop it.
set -euo pipefail
bin="$1"
dir=$(mktemp -d /tmp/vrdma-demo.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin/vhost-user-rdma" --socket-path "$dir/vrdma0.sock" --log-level info 2>"$dir/daemon.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/vrdma0.sock" ] && break; sleep 0.05; done
echo "== vhost-user-rdma $("$bin/vhost-user-rdma" --print-capabilities | tr -d ' \n')"
"$bin/vrdma-demo" "$dir/vrdma0.sock"
kill -TERM "$pid"; wait "$pid"
echo "== daemon log"
sed -e 's/^[^ ]* //' "$dir/daemon.log"
