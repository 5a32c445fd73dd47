# A module that WARNs on load makes the run fail, although the command
# itself succeeds.
. tests/lib/common.sh
set +e
err=$("$VM" --module "$BENCH_MODULES/ksw_warn_on_load.ko" -- true 2>&1 >/dev/null)
status=$?
set -e
expect_eq "$status" 125 "runner exit status"
expect_match "$err" 'deliberate warning' "the warning is shown"
expect_match "$err" 'FAILED: the kernel logged a warning' "failure reason"
