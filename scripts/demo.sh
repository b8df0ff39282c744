#!/bin/bash
# Sets up, builds and runs runscope's main job with the shipped default config:
# prints the host fingerprint, then runs a demo task in its own cgroup and shows where it ran.
# Needs root (it creates cgroups). Extra arguments go before the subcommand, e.g. --config PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target runscope
CONFIG=(--config config/runscope.toml)
[ $# -gt 0 ] && CONFIG=("$@")
echo "== runscope fingerprint"
build/src/runscope "${CONFIG[@]}" fingerprint
echo "== runscope exec: a task in its own cgroup, from its first instruction"
build/src/runscope "${CONFIG[@]}" exec --alloc demo --task hello -- \
  sh -c 'echo "hello from pid $$"; cat /proc/self/cgroup; sleep 1 & wait'
