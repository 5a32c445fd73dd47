# Helpers for guest scripts of tests/cases/kmod-*.sh (sourced inside the VM,
# cwd = repository root). Every helper fails the case loudly.
# shellcheck shell=bash
set -euo pipefail
T=/sys/kernel/tracing
# The modules loaded (tests/lib/common.sh: KSW_KMOD).
TEST_KO=${KSW_KMOD:-kmod}/kstackwatch_test/kstackwatch_test.ko
KSW_GUEST_KO=${KSW_KMOD:-kmod}/kstackwatch/kstackwatch.ko

# Scenario durations that must outlast the guest's own work around them
# (config writes, CPU hotplug) scale with the kernel: the debug kernel
# (lockdep, KASAN) under TCG is several times slower.
SLOW=1
[ ! -e /proc/lockdep ] || SLOW=6

fail() { echo "FAIL: $*" >&2; echo "--- /proc/kstackwatch:" >&2; cat /proc/kstackwatch >&2 || true; exit 1; }
ok() { echo "ok: $*"; }

# Write a config; print the errno (0: accepted). One write() per config.
ksw_write() {
	python3 - "$1" <<'PY'
import os, sys
fd = os.open("/proc/kstackwatch", os.O_WRONLY)
try:
    os.write(fd, sys.argv[1].encode())
    print(0)
except OSError as e:
    print(e.errno)
PY
}
ksw_config() {
	local e
	e=$(ksw_write "$1")
	[ "$e" = 0 ] || fail "config '$1' rejected (errno $e): $(dmesg | grep 'kstackwatch:' | tail -1)"
}
# probe_point [--canary] FUNC: trace-scripts/ksw-probe-point on the test
# module, remembered for this boot (objdump and python take seconds under
# TCG); keyed by the object's size and time, so a rebuilt module is redone.
probe_point() {
	local key f name="$*"
	key=$(stat -c %s-%Y "$TEST_KO")
	f=/tmp/ksw-probe-point.$key.${name// /_}
	if [ ! -s "$f" ]; then
		trace-scripts/ksw-probe-point "${@:1:$#-1}" "$TEST_KO" "${@: -1}" >"$f.new" || fail "ksw-probe-point $*"
		mv "$f.new" "$f"
	fi
	cat "$f"
}
# The config line for FUNC from its built object: "fn=F fo=0x.. so=0x.. wl=8".
watch_local() {
	local p
	p=$(probe_point "$1") || exit 1
	echo "fn=$1 fo=$(sed -E 's/.*func_offset=([^ ]+).*/\1/' <<<"$p") so=$(sed -E 's/.*sp_offset=([^ ]+).*/\1/' <<<"$p") wl=8"
}
watch_canary() {
	local p
	p=$(probe_point "$1") || exit 1
	echo "fn=$1 fo=$(sed -E 's/.*func_offset=([^ ]+).*/\1/' <<<"$p") ac=1"
}
scenario() {
	echo "$1" >/proc/kstackwatch_test || fail "scenario '$1' failed: $(dmesg | tail -2)"
	cat /proc/kstackwatch_test
}
# trace_start [KB]: a fresh trace of the kstackwatch events (KB: ring
# buffer per CPU, for runs with thousands of events).
trace_start() {
	echo 0 >$T/tracing_on
	[ -z "${1:-}" ] || echo "$1" >$T/buffer_size_kb
	echo >$T/trace
	echo mono >$T/trace_clock
	echo 1 >$T/events/kstackwatch/enable
	echo 1 >$T/tracing_on
}
events() { grep -E ' ksw_(arm|hit|disarm): ' $T/trace || true; }
count() { grep -c -- "$1" <<<"$2" || true; }
# field TEXT KEY: value of KEY=... in TEXT (first match).
field() { grep -oE "(^|[ ])$2=[^ ]*" <<<"$1" | head -1 | sed 's/^ *[^=]*=//'; }
counter() { grep '^# counters:' /proc/kstackwatch | grep -oE " $1=[0-9]+" | cut -d= -f2; }
# Counters survive reconfiguration: take a snapshot, then ask what grew.
#   snap=$(counters); ...; since hits "$snap"
counters() { grep '^# counters:' /proc/kstackwatch | sed 's/^# counters://'; }
since() { echo $(( $(counter "$1") - $(grep -oE " $1=[0-9]+" <<<"$2" | cut -d= -f2) )); }
# The exit-path counters a normal return must leave alone: every watched
# frame released by its probe on the instruction where its slot dies.
expect_releases_clean() { # expect_releases_clean WHAT [SNAPSHOT]
	local c v
	for c in exit_path_hits backstop_disarms late_releases unknown_exit; do
		if [ -n "${2:-}" ]; then v=$(since $c "$2"); else v=$(counter $c); fi
		expect "$v" 0 "$1: $c"
	done
}
# What /proc/kstackwatch says about spec N (default 0): where it arms and
# where its slot dies ("+0x2a +0x34").
spec_line() { grep "^#  spec ${1:-0}: .*: arms at " /proc/kstackwatch || fail "no spec ${1:-0} in /proc/kstackwatch"; }
arm_offset() { sed -nE 's/.*: arms at \+(0x[0-9a-f]+).*/\1/p' <<<"$(spec_line "${1:-0}")"; }
release_offsets() { sed -nE 's/.*, disarms at ([^;]*);.*/\1/p' <<<"$(spec_line "${1:-0}")" | sed 's/^ *//'; }
# disasm FUNC: the test module's FUNC as "OFFSET<TAB>INSTRUCTION" lines,
# offsets from the function's start, a call or jump's relocation target
# appended as "-> SYMBOL" (objdump -dr of the built object).
disasm() {
	objdump -dr --no-show-raw-insn "$TEST_KO" | python3 -c '
import re, sys
func, start, out = sys.argv[1], None, []
for line in sys.stdin:
    m = re.match(r"^([0-9a-f]+) <(.+)>:$", line)
    if m:
        start = int(m.group(1), 16) if m.group(2) == func else None
        continue
    if start is None:
        continue
    r = re.match(r"^\s*[0-9a-f]+:\s+R_X86_64_\w+\s+(\S+?)(?:[-+]0x[0-9a-f]+)?$", line)
    if r and out:
        out[-1] += "\t-> " + r.group(1)
        continue
    m = re.match(r"^\s*([0-9a-f]+):\s+(\S.*?)\s*$", line)
    if m:
        out.append("0x%x\t%s" % (int(m.group(1), 16) - start, m.group(2)))
print("\n".join(out))
' "$1"
}
expect() { # expect ACTUAL EXPECTED WHAT
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
	ok "$3 = $2"
}
expect_match() { grep -Eq -- "$2" <<<"$1" || fail "$3: /$2/ not in: $1"; ok "$3"; }
# No watch left on any CPU (after teardown, before the next arm).
expect_all_idle() {
	if grep -E '^# cpu[0-9]+:' /proc/kstackwatch | grep -q '=0x'; then
		fail "$1: a CPU still watches: $(grep -E '^# cpu' /proc/kstackwatch)"
	fi
	ok "$1: every CPU idle"
}
