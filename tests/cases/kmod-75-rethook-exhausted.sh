# A call whose exit cannot be hooked (fprobe's return-hook pool is empty)
# is never armed: it is counted, and no slot is left armed on a dead frame.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
rmmod kstackwatch
insmod "$KSW_GUEST_KO" rethook_nodes=2 || fail "insmod rethook_nodes=2"
trace_start
ksw_config "$(watch_local ksw_test_victim)"
out=$(scenario "clean 4")
expect "$(field "$out" happy)" 4 "all four victims ran"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 2 "frames armed (pool of 2 return hooks)"
expect "$(grep ' ksw_arm: ' <<<"$ev" | awk '{ print $1 }' | sort -u | wc -l)" 2 "two distinct victims armed"
expect "$(counter exit_unobservable)" 2 "frames not armed: exit not observable"
expect "$(count ' ksw_disarm: ' "$ev")" 2 "every armed frame disarmed"
expect "$(grep '^#  spec 0:' /proc/kstackwatch | grep -oE 'fprobe=[0-9]+')" fprobe=2 "fprobe counted the missed exits"
ev_dis=$(grep ' ksw_disarm: ' <<<"$ev")
expect "$(grep -c ' corrupted=intact reason=return$' <<<"$ev_dis")" 2 "the armed frames released on return, intact"
expect "$(counter dropped_no_slot)" 0 "no frame dropped for want of a slot"
expect_releases_clean "hooked calls"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms"
expect_all_idle "after the victims returned"
