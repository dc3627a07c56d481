#!/usr/bin/env bash
# psp's whole test suite, from a fresh Debian 12 machine: installs the system packages it needs
# (DPDK 22.11, libclang, pkg-config), then runs every unit, property, integration and end-to-end test
# (the end-to-end tests start real psp-app / psp-client processes linked over DPDK memif).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Tests run the DPDK EAL without hugepages; keep its runtime files out of the way of other runs.
export RUST_BACKTRACE=1
cargo test --workspace --all-features --locked "$@"
