# ac=1 watches the canary at the slot the prologue stores it to (checked
# against objdump of the built module); an overflow past a buffer is caught
# when it writes the canary and again when it puts it back. The canary's
# value never appears in an event. Without func_offset the watch arms right
# after the prologue's canary store.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
c=$(trace-scripts/ksw-probe-point --canary "$TEST_KO" ksw_test_canary_victim)
expect "$(field "$c" canary_base)" rsp "canary addressed from rsp"

# check_canary_run WHAT: the events of one `canary` scenario.
check_canary_run() {
	local out ev arm disarm hits
	out=$(scenario canary)
	expect "$(field "$out" bad_words)" 16 "$1: the buffer itself was overwritten"
	ev=$(events)
	expect "$(count ' ksw_arm: ' "$ev")" 1 "$1: arm events"
	arm=$(grep ' ksw_arm: ' <<<"$ev")
	expect "$(printf '0x%x' $(( $(field "$arm" addr) - $(field "$arm" sp) )))" "$(field "$c" canary_disp)" "$1: canary slot matches objdump"
	expect "$(field "$arm" value)" canary/0x0 "$1: canary value withheld at arm"
	mapfile -t hits < <(grep ' ksw_hit: ' <<<"$ev")
	expect "${#hits[@]}" 2 "$1: hits (overflow, then repair)"
	expect_match "${hits[0]}" 'writer=ksw_test_overflow\+' "$1: overflow writer"
	expect_match "${hits[1]}" 'writer=ksw_test_overflow\+' "$1: repair writer"
	expect "$(field "${hits[0]}" context)" task/victim "$1: written by the victim task itself"
	expect "$(field "${hits[0]}" old)" canary/0x0 "$1: first hit: old value is the canary (withheld)"
	expect "$(field "${hits[0]}" new)" 0xf0f0f0f0f0f0f0f "$1: first hit: overflow pattern"
	expect "$(field "${hits[1]}" old)" 0xf0f0f0f0f0f0f0f "$1: second hit: old value is the overflow pattern"
	expect "$(field "${hits[1]}" new)" canary/0x0 "$1: second hit: canary restored (withheld)"
	disarm=$(grep ' ksw_disarm: ' <<<"$ev")
	expect "$(field "$disarm" arm_value)" canary/0x0 "$1: disarm: value at arm withheld"
	expect "$(field "$disarm" exit_value)" canary/0x0 "$1: disarm: intact canary at exit, withheld"
	expect "$(field "$disarm" hits)" 2 "$1: hits in the window"
	expect "$(field "$disarm" corrupted)" intact "$1: value restored: not corrupted"
	expect "$(field "$disarm" reason)" return "$1: disarm reason"
}

trace_start
ksw_config "$(watch_canary ksw_test_canary_victim)"
expect_match "$(cat /proc/kstackwatch)" "watch_len=0 auto_canary=1" "canary spec read back"
expect_match "$(spec_line)" "watches the canary at sp\+$(field "$c" canary_disp) " "/proc names the canary slot"
check_canary_run "at the marker"

# No func_offset: armed after the prologue, i.e. on the canary store
# itself (the probe's handler runs after its instruction): the next
# instruction is the one ksw-probe-point finds after the store.
trace_start
ksw_config "fn=ksw_test_canary_victim"
expect_match "$(grep '^func_name=' /proc/kstackwatch)" '^func_name=ksw_test_canary_victim depth=0 max_watch=0 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0$' "spec without func_offset read back"
expect_match "$(spec_line)" 'arms at \+0x[0-9a-f]+ \(after the prologue\)' "/proc: arms after the prologue"
off=$(arm_offset)
next=$(disasm ksw_test_canary_victim | awk -v o="$off" -F'\t' 'found { print $1; exit } $1 == o { found = 1 }')
expect "$next" "$(field "$c" probe_after)" "armed on the canary store (objdump: next instruction $next)"
check_canary_run "after the prologue"
expect_match "$(grep ' ksw_arm: ' <<<"$(events)")" "probe=ksw_test_canary_victim\+$off/" "armed at the prologue's end"
expect_releases_clean "canary watches"
