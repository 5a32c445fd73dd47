#!/usr/bin/env bash
# `make demo`: the silent cross-thread stack corruption, caught.
# Runs inside the VM (tests/vm/run) with kstackwatch and kstackwatch_test
# loaded, from the repository root.
set -euo pipefail
KO=kmod/kstackwatch_test/kstackwatch_test.ko
KSW=target/release/ksw
OUT=/tmp/ksw-demo.data
step() { printf '\n==== %s\n' "$*"; }

step "1. The bug, unwatched"
cat <<'TXT'
buggy() hands out the address of a local and returns. victim() runs next at
the same stack depth, so its buffer reuses that slot. A writer thread on
another CPU writes through the stale pointer while victim() waits. victim()
finds its buffer changed, and nothing links it to the writer:
TXT
echo silent >/proc/kstackwatch_test
cat /proc/kstackwatch_test

step "2. Where to watch, read from the built module"
probe=$(trace-scripts/ksw-probe-point "$KO" ksw_test_victim)
fo=$(sed -E 's/.*func_offset=([^ ]+).*/\1/' <<<"$probe")
so=$(sed -E 's/.*sp_offset=([^ ]+).*/\1/' <<<"$probe")
echo "victim() fills buf[], calls ksw_test_mark(&buf[8]); the probe goes right after that call:"
objdump -d --no-show-raw-insn "$KO" | awk '/<ksw_test_victim>:/,/^$/' | grep -B3 -A1 "$(printf '%x:' $((0x$(objdump -d "$KO" | sed -n 's/^\([0-9a-f]*\) <ksw_test_victim>:$/\1/p') + fo)))" | sed 's/^/    /'
echo "=> func_offset=$fo, sp_offset=$so (the slot is sp+$so at the probe), 8 bytes"

step "3. Watch it"
echo "fn=ksw_test_victim fo=$fo so=$so wl=8" | tee /proc/kstackwatch
head -2 /proc/kstackwatch

step "4. Record while the bug happens (call chains + function_graph, mono clock)"
$KSW record -g --function-graph --graph-filter ':mod:kstackwatch_test' -o $OUT -- \
	sh -c 'echo silent > /proc/kstackwatch_test'
cat /proc/kstackwatch_test

step "5. perf script reads the same file (with the ksw libtraceevent plugin)"
plugins=$(mktemp -d)
cp target/release/libksw_tep_plugin.so "$plugins/"
TRACEEVENT_PLUGIN_DIR=$plugins perf script -i $OUT -G -F comm,tid,cpu,time,event,trace 2>/dev/null | sed 's/^ *//'

step "6. ksw report"
$KSW report -i $OUT
