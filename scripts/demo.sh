#!/usr/bin/env bash
# psp's main job on one machine, no NIC and no hugepages needed: psp-app (DARC, 2 workers) and
# psp-client linked over DPDK memif shared memory, driven with the High Bimodal workload (DISP2:
# 50 % 1 µs, 50 % 100 µs) at loads relative to the two workers' capacity. Prints per-type tail latency
# tables, writes the sweep CSV and plots, then stops the server with SIGINT (it drains and prints its
# counters).
#
#   bash scripts/demo.sh                      # default sweep 0.05:0.25:0.05, 2 s per point
#   LOADS=0.1:0.3:0.1 DURATION=3 bash scripts/demo.sh
#
# Outputs: out/demo/client/ (sweep.csv, sweep_slowdown.svg, sweep_latency.svg, load_*/...),
# out/demo/server.log (server summary), and DARC's reservation log under /tmp/psp-logs/demo/server/.
set -euo pipefail
cd "$(dirname "$0")/.."

LOADS=${LOADS:-0.05:0.25:0.05}
DURATION=${DURATION:-2}
OUT=${OUT:-$PWD/out/demo}
SERVER_CFG=configs/server/memif-demo.yml
CLIENT_CFG=configs/client/memif-demo.yml
WORKLOAD=configs/workloads/DISP2.yml
# Server workers in $SERVER_CFG: the client polls 1 + WORKERS memif queues and scales loads by them.
WORKERS=2
# Seconds the server gets to drain and print its summary after SIGINT before it is killed.
STOP_GRACE_S=30

bash scripts/install-deps.sh
cargo build --release --locked --bin psp-app --bin psp-client

mkdir -p "$OUT"
rm -rf "$OUT/client"
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq "$STOP_GRACE_S"); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap stop_server EXIT

echo "== starting psp-app (DARC, $WORKERS workers, memif server) =="
target/release/psp-app --cfg "$SERVER_CFG" --label demo >"$OUT/server.log" 2>&1 &
server_pid=$!
# The memif client connects once, when its port starts: start it only after the server listens.
for _ in $(seq 600); do
  grep -q "waiting for the link" "$OUT/server.log" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$OUT/server.log"; exit 1; }
  sleep 0.1
done

echo "== psp-client: DISP2 at loads $LOADS of $WORKERS workers, ${DURATION}s each =="
target/release/psp-client -c "$CLIENT_CFG" -I 192.168.10.10 -P 6789 \
  --workload "$WORKLOAD" --workers "$WORKERS" --load-range "$LOADS" --duration "$DURATION" \
  --label demo --outdir "$OUT/client" --no-progress

echo "== stopping psp-app (SIGINT) =="
stop_server
cat "$OUT/server.log"
echo
echo "Plots: $OUT/client/sweep_slowdown.svg, $OUT/client/sweep_latency.svg; table: $OUT/client/sweep.csv"
