# The three ways to record, and ksw report on each: `ksw record -g
# --function-graph`, `perf record -e 'kstackwatch:*' -k mono -g`, and
# `ksw record` stopped by Ctrl-C. The report names the corrupting function,
# the writer and the victim; perf script reads ksw's file, and prints it
# readably with the plugin.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
KSW=$PWD/target/release/ksw
PLUGIN_DIR=$(mktemp -d)
cp target/release/libksw_tep_plugin.so "$PLUGIN_DIR/"
ksw_config "$(watch_local ksw_test_victim)"

# 1. ksw record, call chains and function_graph.
err=$($KSW record -g --function-graph --graph-filter ':mod:kstackwatch_test' -o /tmp/ksw.data -- \
	sh -c 'echo silent > /proc/kstackwatch_test' 2>&1 >/dev/null) || fail "ksw record: $err"
expect_match "$err" '3 events \(1 arm, 1 hit, 1 disarm\), 0 lost, written to /tmp/ksw.data and /tmp/ksw.data.graph' "ksw record summary"
out=$(cat /proc/kstackwatch_test)
vpid=$(field "$out" victim_pids)
wpid=$(field "$out" writer_pid)
text=$($KSW report -i /tmp/ksw.data) || fail "ksw report"
echo "$text"
expect_match "$text" '^1 corruption of 1 victim by 1 writer$' "summary line"
expect_match "$text" "watch [0-9]+: ksw_test_victim \(probe ksw_test_victim\+0x[0-9a-f]+ \[kstackwatch_test\], depth 0\)" "victim function"
expect_match "$text" "task     ksw-victim/$vpid on cpu 0" "victim task"
expect_match "$text" "verdict  HIT: 1 write\(s\) caught, by ksw-writer/$wpid; value changed" "verdict"
expect_match "$text" "ksw-writer/$wpid: 1 write\(s\)" "writer task"
expect_match "$text" '1 x ksw_test_corrupt\+0x[0-9a-f]+ \[kstackwatch_test\] on cpu 1' "writer instruction"
expect_match "$text" 'writer_thread\+0x[0-9a-f]+ \[kstackwatch_test\]' "writer call chain"
expect_match "$text" 'function_graph \(victim, by event id\): ksw_test_thread_fn > ksw_test_silent_round > ksw_test_victim' "victim path from function_graph"
expect_match "$text" 'ksw_test_victim_wait \([0-9.]+ (us|ms)\)' "victim calls while armed"
json=$($KSW report -i /tmp/ksw.data --format json) || fail "ksw report --format json"
prog=$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)
vpid, wpid = int(sys.argv[1]), int(sys.argv[2])
assert r["summary"]["headline"] == "1 corruption of 1 victim by 1 writer", r["summary"]
v, w = r["victims"][0], r["writers"][0]
assert (v["function"], v["task"]["pid"], v["verdict"]) == ("ksw_test_victim", vpid, "hit"), v
assert (w["task"]["comm"], w["task"]["pid"]) == ("ksw-writer", wpid), w
assert w["sites"][0]["instruction"].startswith("ksw_test_corrupt+"), w
assert v["hit_count"] == 1 and v["hits"][0]["agreement"] == "agree", v["hits"]
assert v["hits"][0]["writer"]["pid"] == wpid, v["hits"]
PY
)
echo "$json" >/tmp/report.json
python3 -c "$prog" "$vpid" "$wpid" </tmp/report.json || fail "JSON report"
ok "JSON report: same victim, writer and verdict"

# A frame without hits, of a kernel thread created while recording: since
# 6.2 such a thread is named in copy_process, with no COMM record (its
# FORK record says kthreadd); the name is the arm event's own.
$KSW record -o /tmp/clean.data -- sh -c 'echo clean > /proc/kstackwatch_test' 2>/dev/null || fail "ksw record of a clean frame"
vpid=$(field "$(cat /proc/kstackwatch_test)" victim_pids)
text=$($KSW report -i /tmp/clean.data --max-frames 0) || fail "ksw report of a clean frame"
expect_match "$text" "task     ksw-victim/$vpid on cpu" "a hitless kernel thread's frame is named by its arm"
pyout=$(KSW=$KSW perf script -i /tmp/clean.data -s trace-scripts/ksw-report.py 2>/tmp/py.err) || fail "ksw-report.py: $(cat /tmp/py.err)"
expect_match "$pyout" "victim ksw-victim/$vpid," "ksw-report.py names it by its arm too"

# perf reads ksw's file; the plugin makes it readable.
pout=$(perf script -i /tmp/ksw.data 2>/tmp/perf.err) || fail "perf script on ksw's file: $(cat /tmp/perf.err)"
expect "$(grep -c 'kstackwatch:ksw_' <<<"$pout")" 3 "perf script sees the 3 events"
grep -Eq 'Error|error' /tmp/perf.err && fail "perf script complained: $(cat /tmp/perf.err)"
ok "perf script reads the file without complaint"
pout=$(TRACEEVENT_PLUGIN_DIR=$PLUGIN_DIR perf script -i /tmp/ksw.data 2>/dev/null)
expect_match "$pout" 'ksw-writer wrote 0xabcdabcd over 0x[0-9a-f]+ at 0x[0-9a-f]+ by ksw_test_corrupt\+0x[0-9a-f]+ \[kstackwatch_test\]' "perf script with the ksw plugin"

# perf's file conventions: a new recording moves the old one to .old, is
# private (it holds kernel addresses), and a command's exit status is ksw's.
expect "$(stat -c %a /tmp/ksw.data)" 600 "recording is mode 0600"
expect "$(stat -c %a /tmp/ksw.data.graph)" 600 "graph capture is mode 0600"
before=$(sha256sum </tmp/ksw.data)
rc=0
$KSW record -o /tmp/ksw.data -- sh -c 'exit 3' 2>/tmp/rc.err || rc=$?
expect "$rc" 3 "ksw record exits with the command's status"
expect "$(sha256sum </tmp/ksw.data.old)" "$before" "the previous recording moved to .old"
expect_match "$($KSW report -i /tmp/ksw.data)" 'the module \(its counters over the recording\): 0 armed' "the module's counters are in the recording"
before=$(sha256sum </tmp/ksw.data)
err=$($KSW record -o /tmp/ksw.data -- /nonexistent/command 2>&1) && fail "recorded a command that does not exist"
expect_match "$err" '^ksw: cannot run /nonexistent/command' "a command that cannot run"
expect "$(sha256sum </tmp/ksw.data)" "$before" "a failed recording leaves the output alone"
expect "$(ls -a /tmp | grep -c '\.ksw-.*\.tmp$' || true)" 0 "no temporary file left"
$KSW record -o /tmp/ksw.data -g --function-graph --graph-filter 'no_such_function_xyz' -- true 2>/dev/null && fail "a bad --graph-filter was accepted"
expect "$(sha256sum </tmp/ksw.data)" "$before" "a bad --graph-filter leaves the output alone"
# trace-cmd's trace.dat is not read: said so, in one line.
trace-cmd record -q -C mono -e kstackwatch -o /tmp/tc.dat -- sh -c 'echo silent > /proc/kstackwatch_test' >/dev/null 2>&1 || fail "trace-cmd record"
err=$($KSW report -i /tmp/tc.dat 2>&1) && fail "ksw report read a trace.dat"
expect_match "$err" '^ksw: /tmp/tc.dat: a trace-cmd trace.dat, not a perf.data file' "trace.dat is named as such"

# 2. perf record; ksw report takes symbols from this running kernel.
perf record -q -e 'kstackwatch:*' -k mono -g -a -o /tmp/perf.data -- sh -c 'echo silent > /proc/kstackwatch_test' 2>/dev/null || fail "perf record"
wpid=$(field "$(cat /proc/kstackwatch_test)" writer_pid)
text=$($KSW report -i /tmp/perf.data) || fail "ksw report on perf's file"
expect_match "$text" 'symbols: /proc/kallsyms of the running kernel' "symbols from the running kernel"
expect_match "$text" "ksw-writer/$wpid: 1 write\(s\)" "writer from perf's file"
expect_match "$text" '1 x ksw_test_corrupt\+0x[0-9a-f]+ \[kstackwatch_test\] on cpu 1' "writer instruction from perf's file"

# 3. ksw record without a command, until Ctrl-C.
$KSW record -o /tmp/int.data 2>/tmp/int.err &
rec=$!
sleep 2
echo "silent 2" >/proc/kstackwatch_test
kill -INT $rec
wait $rec || fail "ksw record after SIGINT: $(cat /tmp/int.err)"
expect_match "$(cat /tmp/int.err)" '6 events \(2 arm, 2 hit, 2 disarm\), 0 lost' "recorded until Ctrl-C"
expect_match "$($KSW report -i /tmp/int.data)" '^2 corruptions of 2 victims by 1 writer$' "report of the Ctrl-C recording"

# Errors: one clear line, non-zero exit.
err=$(setpriv --reuid=65534 --regid=65534 --clear-groups $KSW record -o /tmp/nobody.data -- true 2>&1) && fail "recorded without privileges"
expect_match "$err" '^ksw: permission denied .*run as root' "no permission"
err=$(unshare -m sh -c "umount /sys/kernel/tracing; umount /sys/kernel/debug; $KSW record -o /tmp/x.data -- true" 2>&1) && fail "recorded without tracefs"
expect_match "$err" '^ksw: no tracefs found: mount it with' "no tracefs"
head -c 5000 /tmp/ksw.data >/tmp/cut.data
err=$($KSW report -i /tmp/cut.data 2>&1) && fail "a truncated file was accepted"
expect_match "$err" '^ksw: .*offset' "truncated file"
ksw_config ""
rmmod kstackwatch_test kstackwatch
err=$($KSW record -o /tmp/none.data -- true 2>&1) && fail "recorded without the module"
expect_match "$err" '^ksw: the kstackwatch module is not loaded' "module not loaded"
