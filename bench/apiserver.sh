#!/usr/bin/env bash
# Apiserver benchmark: starts the apiserver alone (release build, embedded store in a temp dir) and runs the
# bench client against it. Prints creates/s with p50/p99 latency at 16 and 64 clients, list times for 10,000
# pods, watch fan-out to 1,000 watchers, and the server's RSS. Usage: bench/apiserver.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p rkube-apiserver --example serve --example bench
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CARGO_TARGET_DIR/release/examples/serve" "$dir" "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
"$CARGO_TARGET_DIR/release/examples/bench" "http://127.0.0.1:$port" "$pid"
