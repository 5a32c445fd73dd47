# make stress keeps the kernel's messages off the serial console during
# the config storm (each rejected write logs a line, which costs more than
# the write under TCG) and reads the log itself: a warning logged then
# must still fail the run, shown on the console.
. tests/lib/common.sh
cargo build -q --release -p ksw-stress
set +e
err=$("$VM" -- target/release/ksw-stress quiet-splat "$BENCH_MODULES/ksw_warn_on_load.ko" 2>&1 >/tmp/ksw-quiet-out)
status=$?
set -e
expect_eq "$status" 125 "runner exit status"
expect_match "$(cat /tmp/ksw-quiet-out)" 'reports seen in the kernel log while the console was quiet: [1-9]' "the driver saw the warning"
expect_match "$err" 'ksw-stress: the kernel said: .*WARNING:' "the warning reached the console"
expect_match "$err" 'FAILED: the kernel logged a warning' "failure reason"
note "a warning while the console is quiet fails the run"
