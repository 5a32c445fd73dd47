# Reconfigure and unload while a frame is armed: the watch ends with a
# teardown disarm, every CPU goes idle, nothing is left behind, and a
# reloaded module works again.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
wait_armed() {
	for _ in $(seq 50); do
		grep -q ' 1 armed$' /proc/kstackwatch && return 0
		sleep 0.1
	done
	fail "the held frame was never armed"
}
trace_start
ksw_config "$(watch_local ksw_test_hold_victim)"
echo "hold $((10000 * SLOW))" >/proc/kstackwatch_test &
wait_armed
expect_match "$(grep -E '^# cpu' /proc/kstackwatch)" 'slot0=0x' "a CPU watches the held frame"
[ "$(grep -cE '^# cpu[0-9]+: slot0=0x' /proc/kstackwatch)" = "$(nproc)" ] || fail "not every CPU watches: $(grep '^# cpu' /proc/kstackwatch)"
ok "every online CPU watches the held frame"
ksw_config "$(watch_local ksw_test_direct_victim)"
expect_all_idle "after reconfiguring"
disarm=$(grep ' ksw_disarm: ' <<<"$(events)")
expect "$(field "$disarm" reason)" teardown "disarm reason on reconfigure"
expect "$(field "$disarm" corrupted)" intact "the live frame's value read at teardown: intact"
expect "$(field "$disarm" exit_value)" "$(field "$disarm" arm_value)" "exit value = value at arm"
wait

ksw_config "$(watch_local ksw_test_hold_victim)"
echo "hold $((10000 * SLOW))" >/proc/kstackwatch_test &
wait_armed
rmmod kstackwatch || fail "rmmod while armed"
ok "rmmod while a frame is armed"
# Unloading drops the module's events from the trace buffer: use dmesg.
expect_match "$(dmesg | tail -3)" 'kstackwatch: teardown: disarmed 1 armed frame' "the armed frame is disarmed on unload"
wait
ok "the held frame returned after the module left"

insmod "$KSW_GUEST_KO" || fail "reload"
trace_start
ksw_config "$(watch_local ksw_test_direct_victim)"
scenario direct >/dev/null
expect "$(count ' ksw_hit: ' "$(events)")" 1 "the reloaded module catches"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms after reload"
expect_releases_clean "after reload"
