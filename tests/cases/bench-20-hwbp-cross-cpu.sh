# A hardware watchpoint set by a test module fires on a write from another
# CPU (the module fails to load otherwise).
. tests/lib/common.sh
out=$("$VM" --module "$BENCH_MODULES/ksw_hwbp_selftest.ko" -- dmesg)
expect_match "$out" 'ksw_hwbp_selftest: PASS: write on cpu [0-9]+ caught by selftest_write' "cross-CPU hit"
