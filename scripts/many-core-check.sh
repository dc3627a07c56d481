#!/usr/bin/env bash
# The live-fidelity check on a many-core x86-64 machine without DPDK (issue "live fidelity"):
# the spin app's accuracy per mode with a spinning neighbour, then `psp live` on DISP2 with 12
# workers for darc, cfcfs and darc-ts (live preemption of lent workers), compared with the
# simulator; then the client's send rate with 4
# threads (issue "psp-client: many cores"); the dispatcher loop at worker queue depth 1 and 2
# and the telemetry/shadow costs (issues "millions of requests per second", "operate a running
# server").
#
#   bash scripts/many-core-check.sh pack        # here: build release binaries + the spin bench,
#                                               # pack them with their DPDK libraries into .dev/pack
#   bash scripts/many-core-check.sh run [OUT]   # there (from the repository root): run everything,
#                                               # results in OUT (default out/many-core) + OUT.tgz
#
# .dev/ must be ignored (echo /.dev/ >> .git/info/exclude) and carried to the other machine.
# The run takes ~2 minutes: the spin bench (~3 s), then per policy a warm-up and 8 load points of 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: many-core-check.sh pack | run [OUT]}
case "$mode" in
pack)
  bash scripts/install-deps.sh
  cargo build --release --locked --bin psp --bin psp-app --bin psp-client
  spin=$(cargo bench --locked -p psp-dataplane --bench spin --no-run 2>&1 |
    grep -o 'target/release/deps/spin-[0-9a-f]*' | head -1)
  send=$(cargo bench --locked -p psp-client --bench send_rate --no-run 2>&1 |
    grep -o 'target/release/deps/send_rate-[0-9a-f]*' | head -1)
  loop=$(cargo bench --locked -p psp-dataplane --bench dispatcher_loop --no-run 2>&1 |
    grep -o 'target/release/deps/dispatcher_loop-[0-9a-f]*' | head -1)
  tele=$(cargo bench --locked -p psp-dataplane --bench telemetry --no-run 2>&1 |
    grep -o 'target/release/deps/telemetry-[0-9a-f]*' | head -1)
  rm -rf .dev/pack
  bash ../shared/tools/pack-portable.sh .dev/pack target/release/psp-app target/release/psp-client \
    target/release/psp "$spin" "$send" "$loop" "$tele"
  mv ".dev/pack/bin/$(basename "$spin")" .dev/pack/bin/spin-bench
  mv ".dev/pack/bin/$(basename "$send")" .dev/pack/bin/send-rate-bench
  mv ".dev/pack/bin/$(basename "$loop")" .dev/pack/bin/dispatcher-loop-bench
  mv ".dev/pack/bin/$(basename "$tele")" .dev/pack/bin/telemetry-bench
  cp configs/workloads/DISP2.yml .dev/
  ;;
run)
  out=${2:-out/many-core}
  mkdir -p "$out"
  P=.dev/pack/run.sh
  { date; nproc; lscpu
    echo "siblings: $(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list | sort -un | tr '\n' ' ')"
    echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
    grep -m1 -o -w 'constant_tsc\|nonstop_tsc' /proc/cpuinfo | sort -u; } >"$out/machine.txt" 2>&1 || true
  timeout 60 "$P" spin-bench >"$out/spin.txt" 2>&1 || echo "spin bench failed: $?" >>"$out/spin.txt"
  cat "$out/spin.txt"
  timeout 420 "$P" psp live --workload .dev/DISP2.yml --policies darc,cfcfs,darc-ts --workers 12 \
    --load 0.3:1.0:0.1 --duration 2 --slo 20 --out "$out/live12" >"$out/live12.txt" 2>&1 ||
    echo "psp live failed: $?" >>"$out/live12.txt"
  cat "$out/live12.txt"
  for p in darc cfcfs darc-ts; do
    sed -n '/^psp-app summary/,$p' "$out/live12/$p/server.log" >"$out/server-$p.txt" 2>/dev/null || true
  done
  cat "$out/server-darc.txt" 2>/dev/null || true
  timeout 120 "$P" send-rate-bench 0.5 --threads 4 >"$out/send4.txt" 2>&1 ||
    echo "send_rate bench failed: $?" >>"$out/send4.txt"
  cat "$out/send4.txt"
  for w in 1 4; do
    timeout 120 "$P" dispatcher-loop-bench --workers "$w" --pin --depth-rounds 3 --telemetry-rounds 0 \
      >"$out/loop$w.txt" 2>&1 || echo "dispatcher_loop bench failed: $?" >>"$out/loop$w.txt"
    tail -5 "$out/loop$w.txt"
  done
  # Telemetry and an SJF shadow on a whole server, the shadow's thread on a core of its own.
  timeout 120 "$P" dispatcher-loop-bench --workers 4 --pin --telemetry-rounds 3 --shadow sjf \
    >"$out/loop-shadow.txt" 2>&1 || echo "dispatcher_loop bench failed: $?" >>"$out/loop-shadow.txt"
  grep -E "cost" "$out/loop-shadow.txt" || true
  timeout 120 "$P" telemetry-bench >"$out/telemetry.txt" 2>&1 ||
    echo "telemetry bench failed: $?" >>"$out/telemetry.txt"
  cat "$out/telemetry.txt"
  tar czf "$out.tgz" -C "$(dirname "$out")" "$(basename "$out")"
  ;;
*) echo "usage: many-core-check.sh pack | run [OUT]" >&2; exit 2 ;;
esac
