# Control: the same choreography with no write. Frames are armed and
# disarmed, nothing is hit, nothing is corrupted. The same for the frame's
# bottom slot (sp+0 at the probe), which used to be judged corrupted after
# the return, when the slot was already below sp: each frame is released
# on the instruction where the slot stops being its own.
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
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -c ' hits=0 corrupted=intact reason=return$')" 3 "clean verdicts"
expect "$(counter hits)" 0 "hits counter"
expect "$(counter corrupted)" 0 "corrupted counter"
expect_releases_clean "clean victims"

# The bottom slot of the frame: sp+0 at the probe point.
trace_start
cfg=$(watch_local ksw_test_victim)
ksw_config "fn=ksw_test_victim fo=$(field "$cfg" fo) so=0 wl=8"
expect_match "$(spec_line)" 'watches 8 bytes at sp\+0x0 ' "/proc: the bottom slot"
snap=$(counters)
out=$(scenario "clean 4")
expect "$(field "$out" happy)" 4 "bottom slot: victims happy"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 4 "bottom slot: armed frames"
expect "$(grep ' ksw_arm: ' <<<"$ev" | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^addr=/) a = substr($i, 6); if ($i ~ /^sp=/) s = substr($i, 4) } print (a == s) }' | sort -u)" 1 "bottom slot: watched address is sp"
expect "$(count ' ksw_hit: ' "$ev")" 0 "bottom slot: hits"
expect "$(count ' ksw_disarm: ' "$ev")" 4 "bottom slot: disarms"
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -c ' hits=0 corrupted=intact reason=return$')" 4 "bottom slot: all intact"
expect "$(since hits "$snap")" 0 "bottom slot: hits counter"
expect "$(since corrupted "$snap")" 0 "bottom slot: corrupted counter"
expect "$(since self_hits "$snap")" 0 "bottom slot: self_hits counter"
expect "$(since stale_hits "$snap")" 0 "bottom slot: stale_hits counter"
expect_releases_clean "bottom slot" "$snap"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms"
