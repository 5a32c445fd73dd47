# The victim calls a writer on its own watched local: one arm, one hit
# naming the writer, one disarm with the corrupted verdict; counters agree.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
trace_start
cfg=$(watch_local ksw_test_direct_victim)
ksw_config "$cfg"
expect_match "$(cat /proc/kstackwatch)" "^func_name=ksw_test_direct_victim func_offset=$(field "$cfg" fo) " "canonical spec read back"
out=$(scenario direct)
pid=$(field "$out" victim_pids)
expect "$(field "$out" bad_words)" 1 "the victim saw its word changed"

ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 1 "arm events"
expect "$(count ' ksw_hit: ' "$ev")" 1 "hit events"
expect "$(count ' ksw_disarm: ' "$ev")" 1 "disarm events"
arm=$(grep ' ksw_arm: ' <<<"$ev")
hit=$(grep ' ksw_hit: ' <<<"$ev")
disarm=$(grep ' ksw_disarm: ' <<<"$ev")
expect_match "$arm" "probe=ksw_test_direct_victim\+$(field "$cfg" fo)/" "armed at func+func_offset"
sp=$(field "$arm" sp)
addr=$(field "$arm" addr)
expect "$(printf '0x%x' $((addr - sp)))" "$(field "$cfg" so)" "watched address is sp + sp_offset"
id=$(field "$arm" id)
expect "$(field "$hit" id)" "$id" "hit carries the arm's id"
expect "$(field "$disarm" id)" "$id" "disarm carries the arm's id"
expect_match "$hit" 'writer=ksw_test_corrupt\+0x[0-9a-f]+/' "writer symbol"
expect "$(field "$hit" victim)" "ksw-direct/$pid" "victim comm/pid"
expect "$(field "$hit" old)" "$(field "$arm" value)" "old value is the value at arm"
expect "$(field "$hit" new)" 0xd1ec7 "new value"
expect "$(field "$disarm" corrupted)" 1 "corrupted verdict"
expect "$(field "$disarm" hits)" 1 "hits in the window"
expect "$(field "$disarm" reason)" return "disarm reason"
expect "$(field "$disarm" exit_value)" 0xd1ec7 "value at exit"
expect "$(counter arms)" 1 "arms counter"
expect "$(counter disarms)" 1 "disarms counter"
expect "$(counter hits)" 1 "hits counter"
expect_all_idle "after the frame returned"
dmesg | grep -q "kstackwatch: watch $id: write to $addr by ksw_test_corrupt" || fail "no dmesg line for the hit"
ok "one dmesg line for the hit"
