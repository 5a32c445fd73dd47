#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Tests of trace-scripts/ on the fixtures in perf-plugin/fixtures.
#
#   trace-scripts/test.sh         host checks (run by `cargo test -p ksw-tep-plugin`)
#   trace-scripts/test.sh --vm    also record with record-graph.sh (both modes)
#                                 in the bench VM (needs `make modules`)
#
# A check whose tool is missing (perf, perf's Python support, python3) is
# skipped with the reason. Exit status 1 if any check failed.
set -uo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd .. && pwd)
F=$ROOT/perf-plugin/fixtures
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

passed=0 failed=0 skipped=0
# The ksw binary ksw-report.py names addresses with: the newer build.
if [ -z "${KSW:-}" ]; then
	for k in "$ROOT/target/debug/ksw" "$ROOT/target/release/ksw"; do
		[ -x "$k" ] && { [ -z "${KSW:-}" ] || [ "$k" -nt "$KSW" ]; } && KSW=$k
	done
fi
export KSW
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() {
	failed=$((failed + 1))
	echo "FAIL - $1"
	[ -n "${2:-}" ] && sed 's/^/       | /' <<<"$2"
}
skip() { skipped=$((skipped + 1)); echo "skip - $1: $2"; }

# expect NAME OUTPUT LINE...: every LINE is a whole line of OUTPUT.
expect() {
	local name=$1 out=$2 line
	shift 2
	for line in "$@"; do
		if ! grep -qxF -- "$line" <<<"$out"; then
			not_ok "$name" "missing line: $line
--- output ---
$out"
			return
		fi
	done
	ok "$name"
}

# expect_in NAME OUTPUT TEXT...: every TEXT occurs in OUTPUT.
expect_in() {
	local name=$1 out=$2 text
	shift 2
	for text in "$@"; do
		if ! grep -qF -- "$text" <<<"$out"; then
			not_ok "$name" "missing: $text
--- output ---
$out"
			return
		fi
	done
	ok "$name"
}

# --- record-graph.sh, without tracefs (-n prints the plan) -------------------
R=$HERE/record-graph.sh
if bash -n "$R"; then ok "record-graph.sh parses"; else not_ok "record-graph.sh parses"; fi

out=$("$R" -n -l ':mod:kstackwatch_test' -l 'ksw_*' -o g.dat -- sh -c 'echo silent > /proc/kstackwatch_test' 2>&1)
expect "record-graph.sh trace-cmd plan" "$out" \
	"trace-cmd record -q -C mono -p function_graph -l :mod:kstackwatch_test -l ksw_\\* -e kstackwatch -o g.dat -- sh -c echo\\ silent\\ \\>\\ /proc/kstackwatch_test "

out=$(TRACEFS=/nonexistent "$R" -n -m tracefs -t -l ':mod:kstackwatch_test' -o g.txt -- true 2>&1)
inst=$(sed -n 's/^mkdir //p' <<<"$out" | tr -d ' ')
expect "record-graph.sh tracefs plan" "$out" \
	"echo 'mono' > $inst/trace_clock" \
	"echo ':mod:kstackwatch_test' >> $inst/set_ftrace_filter" \
	"echo 'function_graph' > $inst/current_tracer" \
	"echo '1' > $inst/options/funcgraph-abstime" \
	"echo '1' > $inst/options/funcgraph-proc" \
	"echo '1' > $inst/options/funcgraph-tail" \
	"echo '1' > $inst/events/kstackwatch/enable" \
	"cat $inst/trace > g.txt" \
	"rmdir $inst"
case "$inst" in
*/instances/ksw-graph-*) ok "record-graph.sh tracefs uses an instance of its own" ;;
*) not_ok "record-graph.sh tracefs uses an instance of its own" "$out" ;;
esac
if grep -q "set_graph_function" <<<"$out"; then
	not_ok "record-graph.sh avoids set_graph_function (absent in 6.12 instances)" "$out"
else
	ok "record-graph.sh avoids set_graph_function (absent in 6.12 instances)"
fi

for bad in "-n -- true" "-n -m nope -l f -- true" "-n -l f"; do
	# shellcheck disable=SC2086
	if out=$("$R" $bad 2>&1); then
		not_ok "record-graph.sh $bad is refused" "$out"
	else
		expect_in "record-graph.sh $bad is refused" "$out" "record-graph: "
	fi
done

# --- ksw-report.py logic, with plain python3 and synthetic events ------------
if ! command -v python3 >/dev/null; then
	skip "ksw-report.py verdicts" "no python3"
elif [ -z "${KSW:-}" ]; then
	skip "ksw-report.py verdicts" "no ksw binary (cargo build -p ksw)"
else
	out=$(KSW_KALLSYMS=$F/kallsyms.txt python3 - "$HERE/ksw-report.py" <<'PY' 2>&1
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ksw_report", sys.argv[1])
r = importlib.util.module_from_spec(spec)
spec.loader.exec_module(r)
W, V = 0xffffffffa0019223, 0xffffffffa001bae7
def arm(i, pid, s, addr, value):
    r.kstackwatch__ksw_arm("kstackwatch__ksw_arm", None, 0, s, 0, pid, "kthreadd", [],
                           i, V, addr, addr - 0x40, value, 0, i % 4, 0, 8, {})
def hit(i, pid, s, addr, old, new, victim):
    r.kstackwatch__ksw_hit("kstackwatch__ksw_hit", None, 1, s, 500000, pid, "kthreadd", [],
                           i, addr, W, old, new, V, victim, "ksw-victim", "ksw-writer", i % 4, 8, {})
def disarm(i, pid, s, addr, a, e, hits, corrupted, reason=0):
    r.kstackwatch__ksw_disarm("kstackwatch__ksw_disarm", None, 0, s, 0, pid, "kthreadd", [],
                              i, addr, a, e, hits, i % 4, corrupted, reason, {})
arm(1, 10, 1, 0x1000, 5); disarm(1, 10, 2, 0x1000, 5, 5, 0, 0)              # clean
arm(2, 11, 3, 0x2000, 5); disarm(2, 11, 4, 0x2000, 5, 7, 0, 1, 1)           # silent
arm(3, 12, 5, 0x3000, 5); hit(3, 20, 5, 0x3000, 5, 9, 12)
hit(3, 21, 5, 0x3000, 9, 5, 12); disarm(3, 12, 6, 0x3000, 5, 5, 2, 0)       # hit, restored
hit(4, 20, 7, 0x4000, 1, 2, 13)                                             # armed earlier
arm(5, 14, 8, 0x5000, 5)                                                    # never disarmed
r.trace_end()
PY
)
	expect "ksw-report.py verdicts" "$out" \
		"watch 1: victim kthreadd/10, slot 1, 8 bytes at 0x1000 = 0x5, armed at 1.000000000 on cpu 0 in ksw_test_victim+0xd7 [kstackwatch_test]" \
		"  disarm 2.000000000 (+1000.000 ms) on return: clean (0 hits, 0x5 kept)" \
		"  disarm 4.000000000 (+1000.000 ms) on task_exit: silently corrupted (0 hits, 0x5 -> 0x7)" \
		"  hit    5.000500000 (+0.500 ms) by ksw-writer/20 on cpu 1 at ksw_test_corrupt+0x3 [kstackwatch_test]: 0x5 -> 0x9" \
		"  disarm 6.000000000 (+1000.000 ms) on return: hit (2 hits, 0x5 kept)" \
		"watch 4: victim ksw-victim/13, armed before the recording started or its arm lost (in ksw_test_victim+0xd7 [kstackwatch_test])" \
		"  still armed when the recording stopped (or its disarm lost)" \
		"4 corruptions of 3 victims by 2 writers"
fi

# --- ksw-report.py under perf, on the recorded fixtures ----------------------
perf_python() {
	command -v perf >/dev/null || { echo "perf is not installed (apt install linux-perf)"; return 1; }
	perf version --build-options 2>/dev/null | grep -q 'libpython: \[ on' ||
		{ echo "this perf has no Python scripting (libpython: OFF)"; return 1; }
}
if ! why=$(perf_python); then
	skip "perf script -s ksw-report.py" "$why"
elif [ -z "${KSW:-}" ]; then
	skip "perf script -s ksw-report.py" "no ksw binary (cargo build -p ksw)"
else
	report() { (cd "$TMP" && KSW_KALLSYMS=$F/kallsyms.txt perf script --force -i "$F/$1" -s "$HERE/ksw-report.py" 2>&1); }
	out=$(report silent.perf.data)
	expect "ksw-report.py silent.perf.data" "$out" \
		"watch 1: victim ksw-victim/84, slot 0, 8 bytes at 0xffff8880003cfe50 = 0xdeadbef7, armed at 16.119999289 on cpu 0 in ksw_test_victim+0xd7 [kstackwatch_test]" \
		"  hit    16.126258397 (+6.259 ms) by ksw-writer/85 on cpu 1 at ksw_test_corrupt+0x3 [kstackwatch_test]: 0xdeadbef7 -> 0xabcdabcd" \
		"  disarm 16.138427801 (+18.429 ms) on return: hit (1 hit, 0xdeadbef7 -> 0xabcdabcd)" \
		"1 corruption of 1 victim by 1 writer"
	out=$(report many.perf.data)
	expect "ksw-report.py many.perf.data" "$out" "4 corruptions of 4 victims by 1 writer"
	n=$(grep -c "by ksw-writer/97 on cpu 1 at ksw_test_corrupt+0x3 \[kstackwatch_test\]" <<<"$out")
	if [ "$n" = 4 ]; then ok "ksw-report.py many.perf.data: 4 writes by ksw_test_corrupt"; else not_ok "ksw-report.py many.perf.data: 4 writes by ksw_test_corrupt" "$out"; fi
	out=$(report graph.perf.data)
	expect "ksw-report.py graph.perf.data (call chains)" "$out" \
		"  hit    21.945406109 (+1.984 ms) by ksw-writer/104 on cpu 1 at ksw_test_corrupt+0x3 [kstackwatch_test]: 0xdeadbef7 -> 0xabcdabcd" \
		"1 corruption of 1 victim by 1 writer"
	out=$(cd "$TMP" && KSW_KALLSYMS=$F/ctx-kallsyms.txt perf script --force -i "$F/ctx-hardirq.perf.data" -s "$HERE/ksw-report.py" 2>&1)
	expect_in "ksw-report.py ctx-hardirq.perf.data (reworked module: context)" "$out" \
		" in hardirq on the victim's CPU at ksw_test_corrupt+0x3 [kstackwatch_test]: 0x5008 -> 0xf0e1d2c3"
	out=$(cd "$TMP" && KSW_KALLSYMS=$F/ctx-kallsyms.txt perf script --force -i "$F/ctx-canary.perf.data" -s "$HERE/ksw-report.py" 2>&1)
	expect_in "ksw-report.py ctx-canary.perf.data (values withheld)" "$out" \
		": canary -> 0xf0f0f0f0f0f0f0f" "hit (2 hits, canary kept)"
	# The same headline as ksw report, on every fixture.
	for pair in silent:kallsyms many:kallsyms graph:kallsyms ctx-silent:ctx-kallsyms ctx-hardirq:ctx-kallsyms ctx-canary:ctx-kallsyms ctx-alias:ctx-kallsyms ctx-graph:ctx-kallsyms; do
		data=${pair%%:*} table=${pair#*:}
		py=$(cd "$TMP" && KSW_KALLSYMS=$F/$table.txt perf script --force -i "$F/$data.perf.data" -s "$HERE/ksw-report.py" 2>&1 | tail -1)
		rs=$("$KSW" report -i "$F/$data.perf.data" --kallsyms "$F/$table.txt" --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["summary"]["headline"])')
		if [ "$py" = "$rs" ]; then ok "same headline as ksw report: $data ($rs)"; else not_ok "same headline as ksw report: $data" "python: $py
ksw:    $rs"; fi
	done
	out=$(cd "$TMP" && KSW_KALLSYMS=/dev/null perf script --force -i "$F/silent.perf.data" -s "$HERE/ksw-report.py" 2>&1)
	expect_in "ksw-report.py without symbols keeps hex" "$out" "at 0xffffffffa0019223: 0xdeadbef7 -> 0xabcdabcd"
fi

# --- record-graph.sh in the bench VM (opt-in) --------------------------------
if [ "${1:-}" = "--vm" ]; then
	ko=$ROOT/kmod/kstackwatch/kstackwatch.ko
	tko=$ROOT/kmod/kstackwatch_test/kstackwatch_test.ko
	if [ ! -e "$ko" ] || [ ! -e "$tko" ]; then
		skip "record-graph.sh in the VM" "modules not built (make modules)"
	else
		vmdir=$(mktemp -d /tmp/ksw-record-graph.XXXXXX)
		victim=$("$ROOT/tests/lib/probe-point" "$tko" ksw_test_victim)
		cfg=$(echo "fn=ksw_test_victim ${victim//[a-z_]*=/&} wl=8" | sed 's/func_offset=/fo=/;s/sp_offset=/so=/')
		cat >"$vmdir/guest.sh" <<GUEST
set -uo pipefail
cd "$vmdir"
T=/sys/kernel/tracing
echo "$cfg" > /proc/kstackwatch
$R -l ':mod:kstackwatch_test' -o tc.dat -- sh -c 'echo silent > /proc/kstackwatch_test'; echo "trace-cmd rc=\$?"
$R -m tracefs -l ':mod:kstackwatch_test' -o fs.txt -- sh -c 'echo silent > /proc/kstackwatch_test'; echo "tracefs rc=\$?"
$R -m tracefs -l ':mod:kstackwatch_test' -o fail.txt -- sh -c 'exit 3'; echo "failing rc=\$?"
$R -m tracefs -l 'no_such_function_xyz' -o bad.txt -- true; echo "bad filter rc=\$?"
echo "instances=[\$(ls \$T/instances)] tracer=\$(cat \$T/current_tracer)"
echo > /proc/kstackwatch
GUEST
		out=$("$ROOT/tests/vm/run" --rwdir "$vmdir" --module "$ko" --module "$tko" -- bash "$vmdir/guest.sh" 2>&1)
		expect "record-graph.sh in the VM: both modes, cleanup" "$out" \
			"trace-cmd rc=0" "tracefs rc=0" "failing rc=3" "bad filter rc=1" "instances=[] tracer=nop"
		expect_in "record-graph.sh tracefs: abstime, proc, events inline" "$(cat "$vmdir/fs.txt" 2>&1)" \
			"ksw-vic" "/* ksw_arm: " "/* ksw_hit: " "/* ksw_disarm: " "|  ksw_test_thread_fn [kstackwatch_test]() {"
		if command -v trace-cmd >/dev/null; then
			expect_in "record-graph.sh trace-cmd: graph and events" "$(trace-cmd report -i "$vmdir/tc.dat" 2>&1)" \
				"funcgraph_entry:" "ksw_arm:" "ksw_hit:" "ksw_disarm:" "writer=ksw_test_corrupt+0x3"
		fi
		rm -rf "$vmdir"
	fi
fi

echo "trace-scripts: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
