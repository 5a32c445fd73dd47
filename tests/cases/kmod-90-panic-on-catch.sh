# panic_on_catch=1: the hit event is emitted, then the kernel panics naming
# the writer. The run must fail, showing both.
. tests/lib/common.sh
cat >/tmp/ksw-ph-guest.sh <<'GUEST'
. tests/lib/guest.sh
trace_start
ksw_config "$(watch_local ksw_test_direct_victim) ph=1"
scenario direct
echo "still alive after the hit"
GUEST
set +e
err=$("$VM" --append ftrace_dump_on_oops --module "$KSW_KO" --module "$KSW_TEST_KO" -- env KSW_KMOD="$KSW_KMOD" bash /tmp/ksw-ph-guest.sh 2>&1 >/tmp/ksw-ph-out)
status=$?
set -e
expect_eq "$status" 125 "runner exit status"
expect_match "$err" 'kstackwatch: watch [0-9]+ caught a stack write by ksw_test_corrupt\+0x[0-9a-f]+/0x[0-9a-f]+ \[kstackwatch_test\] \(panic_on_catch=1\)' "the last message names the writer"
expect_match "$err" 'Kernel panic - not syncing: kstackwatch: stack write caught \(panic_on_catch=1\)' "the kernel panics"
expect_match "$err" 'ksw_hit: id=[0-9]+ .*writer=ksw_test_corrupt.* context=task/victim ' "the hit event was emitted first (ftrace dump)"
grep -q "still alive" /tmp/ksw-ph-out && die "the guest survived the hit"
note "panic_on_catch stops the machine at the hit"
