#!/usr/bin/env bash
# `make bench`, on the KASAN kernel: the same hot-function workload, no watch.
set -euo pipefail
echo "{\"syscall_kasan\": $(target/release/syscall-loop 100 200)}" >"$1/kasan.json"
