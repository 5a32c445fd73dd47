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

step "2. Where to watch: by name, from the module's DWARF"
# The line where victim() starts waiting for the writer: watch buf[8] from there on.
line=$(grep -n 'ksw_test_victim_wait(r, &buf' kmod/kstackwatch_test/ksw_test_victims.c | cut -d: -f1)
echo "victim()'s locals and parameters that live in its frame:"
$KSW watch --module "$KO" --list ksw_test_victim | sed 's/^/    /'

step "3. Watch buf[8] in ksw_test_victim from ksw_test_victims.c:$line on"
$KSW watch --module "$KO" --apply ksw_test_victim 'buf[8]' --at "ksw_test_victims.c:$line"
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
