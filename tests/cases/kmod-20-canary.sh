# ac=1 watches the canary at the slot the prologue stores it to (checked
# against objdump of the built module); an overflow past a buffer is caught
# when it writes the canary and again when it puts it back.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
trace_start
ksw_config "$(watch_canary ksw_test_canary_victim)"
expect_match "$(cat /proc/kstackwatch)" "watch_len=0 auto_canary=1" "canary spec read back"
out=$(scenario canary)
ev=$(events)
arm=$(grep ' ksw_arm: ' <<<"$ev")
expect "$(count ' ksw_arm: ' "$ev")" 1 "arm events"
c=$(trace-scripts/ksw-probe-point --canary "$TEST_KO" ksw_test_canary_victim)
expect "$(field "$c" canary_base)" rsp "canary addressed from rsp"
expect "$(printf '0x%x' $(( $(field "$arm" addr) - $(field "$arm" sp) )))" "$(field "$c" canary_disp)" "canary slot matches objdump"
canary=$(field "$arm" value)
[ "$canary" != 0x0 ] || fail "canary value is zero"
mapfile -t hits < <(grep ' ksw_hit: ' <<<"$ev")
expect "${#hits[@]}" 2 "hits (overflow, then repair)"
expect_match "${hits[0]}" 'writer=ksw_test_overflow\+' "overflow writer"
expect "$(field "${hits[0]}" old)" "$canary" "first hit: old value is the canary"
expect "$(field "${hits[0]}" new)" 0xf0f0f0f0f0f0f0f "first hit: overflow pattern"
expect "$(field "${hits[1]}" new)" "$canary" "second hit: canary restored"
disarm=$(grep ' ksw_disarm: ' <<<"$ev")
expect "$(field "$disarm" hits)" 2 "hits in the window"
expect "$(field "$disarm" corrupted)" 0 "value restored: not corrupted"
expect "$(field "$out" bad_words)" 16 "the buffer itself was overwritten"
