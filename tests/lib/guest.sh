# Helpers for guest scripts of tests/cases/kmod-*.sh (sourced inside the VM,
# cwd = repository root). Every helper fails the case loudly.
# shellcheck shell=bash
set -euo pipefail
T=/sys/kernel/tracing
TEST_KO=kmod/kstackwatch_test/kstackwatch_test.ko

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
# The config line for FUNC from its built object: "fn=F fo=0x.. so=0x.. wl=8".
watch_local() {
	local p
	p=$(trace-scripts/ksw-probe-point "$TEST_KO" "$1") || fail "probe-point $1"
	echo "fn=$1 fo=$(sed -E 's/.*func_offset=([^ ]+).*/\1/' <<<"$p") so=$(sed -E 's/.*sp_offset=([^ ]+).*/\1/' <<<"$p") wl=8"
}
watch_canary() {
	local p
	p=$(trace-scripts/ksw-probe-point "$TEST_KO" "$1") || fail "probe-point $1"
	echo "fn=$1 fo=$(sed -E 's/.*func_offset=([^ ]+).*/\1/' <<<"$p") ac=1"
}
scenario() {
	echo "$1" >/proc/kstackwatch_test || fail "scenario '$1' failed: $(dmesg | tail -2)"
	cat /proc/kstackwatch_test
}
trace_start() {
	echo 0 >$T/tracing_on
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
