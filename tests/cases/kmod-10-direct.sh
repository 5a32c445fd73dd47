# The victim calls a writer on its own watched local: one arm, one hit
# naming the writer (the victim task itself), one disarm on the instruction
# where the slot dies, with the changed verdict; counters agree; one dmesg
# line naming writer and victim, without addresses or values.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
trace_start
cfg=$(watch_local ksw_test_direct_victim)
ksw_config "$cfg"
expect_match "$(cat /proc/kstackwatch)" "^func_name=ksw_test_direct_victim func_offset=$(field "$cfg" fo) " "canonical spec read back"
expect_match "$(head -1 /proc/kstackwatch)" '^# kstackwatch: 1 spec\(s\), 4 of 4 hardware slot\(s\) claimed, 0 armed$' "status line"
expect "$(arm_offset)" "$(field "$cfg" fo)" "arms at the given func_offset"
# The slot dies where the epilogue moves sp above it: one release point,
# an instruction that writes %rsp (objdump of the built module).
rel=$(release_offsets)
expect_match "$rel" '^\+0x[0-9a-f]+$' "one release point"
insn=$(disasm ksw_test_direct_victim | grep -P "^${rel#+}\t" || true)
expect_match "$insn" ',%rsp$|^0x[0-9a-f]+\s(pop|leave|ret)' "the release instruction moves sp ($insn)"
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
expect "$(field "$arm" value)" 0x1008 "value at arm (the buffer's word 8)"
hit_victim=$(field "$hit" victim) # name/pid
expect "$(field "$arm" victim)" "${hit_victim%/*}" "the arm names the victim as the hit does"
id=$(field "$arm" id)
expect "$(field "$hit" id)" "$id" "hit carries the arm's id"
expect "$(field "$disarm" id)" "$id" "disarm carries the arm's id"
expect_match "$hit" 'writer=ksw_test_corrupt\+0x[0-9a-f]+/' "writer symbol"
expect "$(field "$hit" context)" task/victim "the writer is the victim task itself"
expect "$(field "$hit" victim)" "ksw-direct/$pid" "victim comm/pid"
expect "$(field "$hit" writer_comm)" ksw-direct "writer comm"
expect "$(field "$hit" old)" "$(field "$arm" value)" "old value is the value at arm"
expect "$(field "$hit" new)" 0xd1ec7 "new value"
expect "$(field "$disarm" arm_value)" 0x1008 "disarm: value at arm"
expect "$(field "$disarm" exit_value)" 0xd1ec7 "disarm: value when the frame died"
expect "$(field "$disarm" corrupted)" changed "corrupted verdict"
expect "$(field "$disarm" hits)" 1 "hits in the window"
expect "$(field "$disarm" reason)" return "disarm reason"
expect "$(counter arms)" 1 "arms counter"
expect "$(counter disarms)" 1 "disarms counter"
expect "$(counter hits)" 1 "hits counter"
expect "$(counter corrupted)" 1 "corrupted counter"
expect "$(counter self_hits)" 0 "self_hits counter"
expect "$(counter stale_hits)" 0 "stale_hits counter"
expect_releases_clean "normal return"
expect_all_idle "after the frame returned"
line=$(dmesg | grep "kstackwatch: watch $id: " || true)
expect "$(wc -l <<<"$line")" 1 "one dmesg line for the hit"
expect_match "$line" "kstackwatch: watch $id: stack write by ksw_test_corrupt\+0x[0-9a-f]+/0x[0-9a-f]+ \[kstackwatch_test\] \(ksw-direct/$pid\) into the frame of ksw-direct/$pid$" "dmesg line names writer and victim"
for secret in "${addr#0x}" d1ec7 1008; do
	grep -q "$secret" <<<"$line" && fail "the dmesg line shows '$secret' (no addresses or values in dmesg)"
done
ok "no stack address or value in dmesg"
