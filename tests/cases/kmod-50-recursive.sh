# The depth filter: with recursion 0..6 and a write at depth 3, dp=3 arms
# only depth 3 and catches the write; dp=2 arms only depth 2 and sees none.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
base=$(watch_local ksw_test_recurse)

trace_start
ksw_config "$base dp=3"
out=$(scenario "recursive 3 6")
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 1 "dp=3: armed frames"
expect "$(field "$(grep ' ksw_arm: ' <<<"$ev")" depth)" 3 "dp=3: armed depth"
expect "$(count ' ksw_hit: ' "$ev")" 1 "dp=3: the write at depth 3 is caught"
hit=$(grep ' ksw_hit: ' <<<"$ev")
expect "$(field "$hit" new)" 0xdeec "dp=3: value written at depth 3"
expect "$(field "$hit" id)" "$(field "$(grep ' ksw_arm: ' <<<"$ev")" id)" "dp=3: the hit belongs to the depth-3 frame"
expect "$(field "$hit" context)" task/victim "dp=3: written by the recursing task itself"
expect "$(field "$(grep ' ksw_disarm: ' <<<"$ev")" corrupted)" changed "dp=3: corrupted verdict"
other=$(counter other_depth)
[ "$other" -ge 6 ] || fail "probe hits at other depths: $other"
ok "other depths counted ($other), not armed"

trace_start
ksw_config "$base dp=2"
scenario "recursive 3 6" >/dev/null
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 1 "dp=2: armed frames"
expect "$(field "$(grep ' ksw_arm: ' <<<"$ev")" depth)" 2 "dp=2: armed depth"
expect "$(count ' ksw_hit: ' "$ev")" 0 "dp=2: no write into depth 2"
expect "$(field "$(grep ' ksw_disarm: ' <<<"$ev")" corrupted)" intact "dp=2: clean verdict"

# Levels that sleep and move to another CPU: depth follows the task.
trace_start
ksw_config "$base dp=3"
out=$(scenario "recursive 3 6 hop")
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 1 "hop: armed frames"
expect "$(field "$(grep ' ksw_arm: ' <<<"$ev")" depth)" 3 "hop: armed depth"
expect "$(count ' ksw_hit: ' "$ev")" 1 "hop: the write at depth 3 is caught"
cpus=$(grep -E ' ksw_(arm|hit|disarm): ' $T/trace | sed -E 's/.*\[0*([0-9]+)\].*/\1/' | sort -u | wc -l)
ok "hop: events on $cpus CPU(s)"

trace_start
ksw_config "$base dp=9"
scenario "recursive 3 6" >/dev/null
expect "$(count ' ksw_arm: ' "$(events)")" 0 "dp=9 beyond the recursion: nothing armed"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms"
expect_releases_clean "recursion"
