#!/usr/bin/env bash
# Online re-planning, live (issue "operate a running server"): psp-app runs DARC (or the policy
# given) on 3 workers over kernel UDP; psp-client plays a workload whose mix shifts 50/50 ->
# 90/10 -> 10/90 (SHORT 20 us, LONG 100 us; 3 s per phase, each at 0.2 of the workers'
# capacity); the server's telemetry windows (100 ms) show when the plan changed. `psp plans`
# prints one line per plan change with the phase it fell in and judges re-planning (within 3
# windows of each shift, no change in steady parts), then the summary's plan-update count.
#
#   bash scripts/replan-demo.sh [POLICY] [LOAD] [ROUNDING_HYSTERESIS]
#     POLICY: darc (default) | darc-model; LOAD: 0.2; ROUNDING_HYSTERESIS: 0.25 (workers: DARC
#     keeps its plan while each group's demand stays within that of the band rounding to its
#     count; spinning on 2 shared cores inflates service times, which otherwise flips a
#     demand near the rounding cut back and forth; 0 is the original's rule)
#
# Needs release binaries (cargo build --release). Runs ~12 s; files in a temp dir (plans/ holds
# plans.csv, plan.svg: workers reserved per type over time, and mix.svg).
set -euo pipefail
cd "$(dirname "$0")/.."
policy=${1:-darc}
load=${2:-0.2}
rounding_hysteresis=${3:-0.25}
bin=target/release
[ -x "$bin/psp-app" ] && [ -x "$bin/psp-client" ] && [ -x "$bin/psp" ] || { echo "build first: cargo build --release" >&2; exit 2; }
dir=$(mktemp -d /tmp/psp-replan.XXXXXX)
port=$((20000 + RANDOM % 20000))
cat >"$dir/server.yml" <<EOF
cpus: [0, 0, 1, 1]
log_dir: $dir/logs
net_workers:
  - {ip: 127.0.0.1, port: $port, dp: DARC}
network: {device_id: 0, mac: '02:00:00:00:00:01', eal_init: [--no-huge]}
requests:
  - {type: SHORT, mean_ns: 20000, ratio: 0.5}
  - {type: LONG, mean_ns: 100000, ratio: 0.5}
workers: {number: 3, type: MB}
psp:
  policy: $policy
  idle: yield
  app: spin
  darc: {samples_needed: 1000, rounding_hysteresis: $rounding_hysteresis}
  telemetry: {interval_ms: 100}
EOF
cat >"$dir/workload.yml" <<EOF
- {mean_ns: [20000, 100000], ratios: [.5, .5], duration: 3, rtype: [SHORT, LONG]}
- {mean_ns: [20000, 100000], ratios: [.9, .1], duration: 3, rtype: [SHORT, LONG]}
- {mean_ns: [20000, 100000], ratios: [.1, .9], duration: 3, rtype: [SHORT, LONG]}
EOF
"$bin/psp-app" --cfg "$dir/server.yml" --udp "127.0.0.1:$port" --label demo \
  >"$dir/server.out" 2>"$dir/server.err" &
server=$!
trap 'kill -INT $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q serving "$dir/server.err" 2>/dev/null && break; sleep 0.05; done
"$bin/psp-client" --workload "$dir/workload.yml" -I 127.0.0.1 -P "$port" --transport udp \
  --bind 127.0.0.1:0 --load-range "$load:$load:0.1" --workers 3 --outdir "$dir/client" \
  --no-progress 2>"$dir/client.err" | grep rateclient
kill -INT $server; wait $server || true
trap - EXIT
# Each plan change with the client's phase, and the verdict: re-planned within 3 windows of
# each shift, no reservation change in a phase's steady part (plans.csv, plan.svg, mix.svg).
"$bin/psp" plans --telemetry "$dir/logs/demo/server/telemetry.jsonl" \
  --client "$(dirname "$(ls "$dir"/client/*/summary.json | head -1)")" --out "$dir/plans"
grep -E "plan updates|model planner" "$dir/server.out" | sed 's/^.*plan updates/plan updates/'
echo "files in $dir"
