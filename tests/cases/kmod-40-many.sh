# More victims than hardware slots: as many frames armed as there are
# slots, the rest counted as dropped (once per frame); every hit belongs to
# an armed frame; disabling frees every slot (perf can take all four
# again). max_watch bounds the slots claimed (the sum over the specs): the
# rest stay free for perf, and kstackwatch takes what perf leaves.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
four_breakpoints() {
	local a
	a=0x$(grep ' jiffies_64$' /proc/kallsyms | cut -d' ' -f1)
	perf stat -a -e "mem:$a/8:w,mem:$(printf 0x%x $((a + 8)))/8:w,mem:$(printf 0x%x $((a + 16)))/8:w,mem:$(printf 0x%x $((a + 24)))/8:w" -- true 2>&1
}
claimed() { sed -nE 's/^# kstackwatch: .*, ([0-9]+ of [0-9]+) hardware slot.*/\1/p' /proc/kstackwatch; }
jiffies=0x$(grep ' jiffies$' /proc/kallsyms | cut -d' ' -f1)
[ "$jiffies" != 0x ] || fail "no jiffies in /proc/kallsyms"
# perf_jiffies CMD...: perf record of a write breakpoint on jiffies (not a
# stack) while CMD runs; prints perf's messages.
perf_jiffies() { perf record -N -e "mem:$jiffies:w" -a -o /tmp/jiffies.data -- "$@" 2>&1; }

trace_start
ksw_config "$(watch_local ksw_test_victim)"
expect "$(claimed)" "4 of 4" "max_watch=0 claims every slot"
expect_match "$(four_breakpoints)" 'not supported|Error|No space' "perf cannot get breakpoints while kstackwatch holds them"
out=$(scenario "silent 6")
expect "$(field "$out" unhappy)" 6 "all six victims corrupted"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 4 "armed frames"
expect "$(grep ' ksw_arm: ' <<<"$ev" | grep -oE 'slot=[0-9]' | sort -u | wc -l)" 4 "distinct slots"
expect "$(counter dropped_no_slot)" 2 "victims counted as dropped (once per frame)"
expect "$(counter dropped_max_watch)" 0 "none dropped by max_watch"
expect "$(count ' ksw_hit: ' "$ev")" 4 "hits (one per armed victim)"
armed_ids=$(grep ' ksw_arm: ' <<<"$ev" | grep -oE ' id=[0-9]+' | sort)
hit_ids=$(grep ' ksw_hit: ' <<<"$ev" | grep -oE ' id=[0-9]+' | sort)
expect "$hit_ids" "$armed_ids" "every hit belongs to an armed frame"
expect "$(count ' ksw_disarm: ' "$ev")" 4 "disarms"
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -c 'hits=1 corrupted=changed reason=return')" 4 "corrupted verdicts"
expect_releases_clean "six victims"
ksw_config ""
expect_match "$(cat /proc/kstackwatch)" "not watching" "disabled"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms"
out=$(four_breakpoints)
grep -Eq 'not supported|Error' <<<"$out" && fail "perf could not get 4 breakpoints after disable: $out"
ok "all four breakpoint slots are free again"

# max_watch=1: one slot claimed, three left to perf; one frame armed at a
# time, the others dropped by the spec's cap.
trace_start
ksw_config "$(watch_local ksw_test_victim) mw=1"
expect "$(claimed)" "1 of 4" "mw=1 claims one slot"
expect_match "$(head -1 /proc/kstackwatch)" '1 of 4 hardware slot\(s\) claimed' "/proc says 1 of 4 claimed"
expect "$(grep -E '^# cpu[0-9]+:' /proc/kstackwatch | grep -cvE '^# cpu[0-9]+: slot0=parked$')" 0 "each CPU has slot0 only, parked"
snap=$(counters)
out=$(perf_jiffies sh -c 'echo "silent 3" >/proc/kstackwatch_test; sleep 1') || fail "perf record of a breakpoint on jiffies with mw=1: $out"
samples=$(sed -nE 's/.*\(([0-9]+) samples\).*/\1/p' <<<"$out")
[ "${samples:-0}" -gt 0 ] || fail "perf's breakpoint on jiffies saw no write: $out"
ok "perf record -e mem:jiffies:w works beside kstackwatch ($samples samples)"
expect "$(field "$(cat /proc/kstackwatch_test)" unhappy)" 3 "three victims corrupted"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 1 "mw=1: frames armed"
expect "$(count ' ksw_hit: ' "$ev")" 1 "mw=1: the armed frame's write caught while perf held a breakpoint"
expect "$(since dropped_max_watch "$snap")" 2 "mw=1: frames dropped by max_watch"
expect "$(since dropped_no_slot "$snap")" 0 "mw=1: none dropped for want of a slot"

# The claim is the sum over the specs.
ksw_config "$(watch_local ksw_test_victim) mw=1
$(watch_local ksw_test_direct_victim) mw=1"
expect "$(claimed)" "2 of 4" "two specs with mw=1 claim two slots"

# Negative control: every slot claimed, perf gets none.
ksw_config "$(watch_local ksw_test_victim) mw=4"
expect "$(claimed)" "4 of 4" "mw=4 claims every slot"
out=$(perf_jiffies sleep 1) && fail "perf got a breakpoint although kstackwatch claimed all four: $out"
expect_match "$out" 'No space left on device' "perf record fails: no slot left"

# The other way round: with perf holding one breakpoint on every CPU,
# kstackwatch claims the three that are left.
ksw_config ""
out=$(perf_jiffies sh -c "echo 'fn=ksw_test_victim' >/proc/kstackwatch && head -1 /proc/kstackwatch >/tmp/claimed") || fail "perf record while configuring: $out"
expect_match "$(cat /tmp/claimed)" ' 3 of 4 hardware slot\(s\) claimed' "kstackwatch takes the slots perf left"
ksw_config ""
