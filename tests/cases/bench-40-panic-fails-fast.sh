# A panicking guest fails the run at once, with the panic shown, instead of
# hanging until the timeout.
. tests/lib/common.sh
set +e
err=$("$VM" --timeout 600 -- sh -c 'echo c > /proc/sysrq-trigger; sleep 1000' 2>&1 >/dev/null)
status=$?
set -e
expect_eq "$status" 125 "runner exit status"
expect_match "$err" 'Kernel panic' "the panic is shown"
expect_no_match "$err" 'timeout after' "failure reason"
