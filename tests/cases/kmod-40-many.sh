# More victims than hardware slots: as many frames armed as there are
# slots, the rest counted as dropped; every hit belongs to an armed frame;
# disabling frees every slot (perf can take all four again).
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
four_breakpoints() {
	local a
	a=0x$(grep ' jiffies_64$' /proc/kallsyms | cut -d' ' -f1)
	perf stat -a -e "mem:$a/8:w,mem:$(printf 0x%x $((a + 8)))/8:w,mem:$(printf 0x%x $((a + 16)))/8:w,mem:$(printf 0x%x $((a + 24)))/8:w" -- true 2>&1
}
trace_start
ksw_config "$(watch_local ksw_test_victim)"
slots=$(sed -nE 's/^# kstackwatch: .* ([0-9]+) hardware slot.*/\1/p' /proc/kstackwatch)
expect "$slots" 4 "hardware slots"
expect_match "$(four_breakpoints)" 'not supported|Error|No space' "perf cannot get breakpoints while kstackwatch holds them"
out=$(scenario "silent 6")
expect "$(field "$out" unhappy)" 6 "all six victims corrupted"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 4 "armed frames"
expect "$(grep ' ksw_arm: ' <<<"$ev" | grep -oE 'slot=[0-9]' | sort -u | wc -l)" 4 "distinct slots"
expect "$(counter dropped_no_slot)" 2 "victims counted as dropped"
expect "$(count ' ksw_hit: ' "$ev")" 4 "hits (one per armed victim)"
armed_ids=$(grep ' ksw_arm: ' <<<"$ev" | grep -oE ' id=[0-9]+' | sort)
hit_ids=$(grep ' ksw_hit: ' <<<"$ev" | grep -oE ' id=[0-9]+' | sort)
expect "$hit_ids" "$armed_ids" "every hit belongs to an armed frame"
expect "$(count ' ksw_disarm: ' "$ev")" 4 "disarms"
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -c 'corrupted=1')" 4 "corrupted verdicts"
ksw_config ""
expect_match "$(cat /proc/kstackwatch)" "not watching" "disabled"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms"
out=$(four_breakpoints)
grep -Eq 'not supported|Error' <<<"$out" && fail "perf could not get 4 breakpoints after disable: $out"
ok "all four breakpoint slots are free again"
