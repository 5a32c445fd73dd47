# `ksw watch` on the kernel image: --list and a register-only parameter
# of do_sys_poll; the on-stack timespec of nanosleep(2), written by
# get_timespec64() with the value userspace passed, watched by name. Then
# `ksw record --watch`: one command from a variable name to a report, the
# previous configuration restored after.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
. tests/lib/ksw-watch.sh

list=$($KSW watch --vmlinux "$VMLINUX" --list do_sys_poll) || fail "ksw watch --list do_sys_poll"
expect_match "$list" 'stack_pps +local long\[32\] \(256 bytes\), fs/select.c:[0-9]+' "--list: stack_pps in the frame"
expect_match "$(grep '^not in the frame:' <<<"$list")" 'nfds \(' "--list: nfds is not in the frame"
err=$($KSW watch --vmlinux "$VMLINUX" do_sys_poll nfds 2>&1) && fail "watched a register-only parameter"
expect_match "$err" 'nfds is never in do_sys_poll.s frame .*only in register' "register-only parameter: the error says where it is"

# nanosleep(2): __do_sys_nanosleep (inlined into the syscall's entry) has
# `struct timespec64 tu` on its stack and lets get_timespec64() fill it
# from userspace: the hit names that writer and the value the process
# passed, which proves the offset.
ksw_config ""
cfg=$($KSW watch --vmlinux "$VMLINUX" --apply __x64_sys_nanosleep tu.tv_nsec 2>/tmp/kwatch.err) || fail "ksw watch __x64_sys_nanosleep: $(cat /tmp/kwatch.err)"
cat /tmp/kwatch.err
expect_match "$cfg" '^fn=__x64_sys_nanosleep fo=0x[0-9a-f]+ so=0x[0-9a-f]+ wl=8$' "config line"
expect_match "$(cat /tmp/kwatch.err)" 'member +tu.tv_nsec: long, 8 bytes at tu\+0x8' "the member resolved"
trace_start
python3 - >/tmp/sleep.out <<'PY'
import ctypes, os
class ts(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
libc = ctypes.CDLL(None, use_errno=True)
t = ts(0, 12345)
assert libc.syscall(35, ctypes.byref(t), None) == 0  # SYS_nanosleep
print("pid=%d" % os.getpid())
PY
pid=$(field "$(cat /tmp/sleep.out)" pid)
ev=$(events)
arm=$(grep ' ksw_arm: ' <<<"$ev" | grep -m1 -E "^ *python3-$pid " || true)
[ -n "$arm" ] || fail "nanosleep of python3/$pid was not armed: $ev"
expect "$(arm_so "$arm")" "$(field "$cfg" so)" "armed at sp + the sp_offset ksw watch found"
# Armed right after the prologue: the zero-initialization of tu (the
# victim's own store) is caught first, then get_timespec64's.
hit=$(grep ' ksw_hit: ' <<<"$ev" | grep "victim=python3/$pid " | grep -m1 ' new=0x3039 ' || true)
[ -n "$hit" ] || fail "no write of the tv_nsec the process passed (12345 = 0x3039): $ev"
expect_match "$hit" " writer=get_timespec64\+0x[0-9a-f]+/" "get_timespec64 wrote the tv_nsec the process passed (12345)"
ksw_config ""

# ksw record --watch: applies, records, restores (an empty configuration).
out=$($KSW record -g -o /tmp/watch.data \
	--watch "ksw_test_victim buf[8] --at $(after_marker ksw_test_victim) --module $TEST_KO" \
	-- sh -c 'echo silent > /proc/kstackwatch_test' 2>&1) || fail "ksw record --watch: $out"
echo "$out"
expect_match "$out" 'ksw record --watch: ksw_test_victim' "record --watch explains the watch"
expect_match "$out" '3 events \(1 arm, 1 hit, 1 disarm\)' "recorded the silent round"
expect "$(grep -c '^func_name=' /proc/kstackwatch || true)" 0 "configuration restored after recording"
text=$($KSW report -i /tmp/watch.data) || fail "ksw report"
echo "$text"
expect_match "$text" '^1 corruption of 1 victim by 1 writer$' "report: the corruption"
expect_match "$text" 'ksw_test_corrupt\+0x[0-9a-f]+ \[kstackwatch_test\]' "report: the writer"
