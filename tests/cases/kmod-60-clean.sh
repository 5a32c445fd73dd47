# Control: the same choreography with no write. Frames are armed and
# disarmed, nothing is hit, nothing is corrupted.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
trace_start
ksw_config "$(watch_local ksw_test_victim)"
out=$(scenario "clean 3")
expect "$(field "$out" happy)" 3 "victims happy"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 3 "armed frames"
expect "$(count ' ksw_hit: ' "$ev")" 0 "hits"
expect "$(count ' ksw_disarm: ' "$ev")" 3 "disarms"
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -c 'corrupted=0 reason=return')" 3 "clean verdicts"
expect "$(counter hits)" 0 "hits counter"
expect "$(counter corrupted)" 0 "corrupted counter"
