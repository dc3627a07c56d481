#!/usr/bin/env bash
# Installs the system packages psp needs on Debian 12: DPDK 22.11 (libdpdk-dev), libclang for bindgen,
# pkg-config. Idempotent: does nothing when everything is present. Needs root (or sudo).
set -euo pipefail
need=()
pkg-config --atleast-version=22.11 libdpdk 2>/dev/null || need+=(libdpdk-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
# clang's builtin headers (stddef.h) are needed by bindgen
ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h >/dev/null 2>&1 || need+=(libclang-dev)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
