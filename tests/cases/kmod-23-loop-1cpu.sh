# The former wedge, on one CPU: the canary watch of kmod-22 on the small
# hot function, 2000 calls back to back from the writing task. It
# completes, nothing is left armed, new processes run, and the guest shuts
# down normally (the runner fails a guest that does not, at its timeout,
# with every vCPU's state).
. tests/lib/common.sh
run_in_guest --cpus 1 "$0" "$@"
. tests/lib/guest.sh
expect "$(nproc)" 1 "one CPU"
trace_start
ksw_config "fn=ksw_test_small"
expect_match "$(spec_line)" 'arms at \+0x[0-9a-f]+ \(after the prologue\)( \[[a-z -]+\])?, watches the canary ' "armed after the prologue, the canary"
expect "$(grep -c '^# cpu' /proc/kstackwatch)" 1 "one CPU listed"
out=$(timeout $((60 * SLOW)) sh -c 'echo "loop 2000" >/proc/kstackwatch_test && cat /proc/kstackwatch_test') || fail "loop 2000 did not complete"
expect "$(field "$out" calls)" 2000 "calls"
expect "$(counter arms)" 2000 "arms"
expect "$(counter disarms)" 2000 "disarms"
expect "$(counter hits)" 0 "hits"
expect "$(counter corrupted)" 0 "corrupted"
expect "$(counter self_hits)" 0 "self_hits"
expect "$(counter remote_kicks)" 0 "no other CPU to kick"
expect_releases_clean "loop on one CPU"
expect_all_idle "after the loop"
expect "$(count ' ksw_disarm: ' "$(events)")" 2000 "disarm events"
/bin/true || fail "/bin/true after the loop"
expect_match "$(date +%Y)" '^20[0-9][0-9]$' "date runs after the loop"
ksw_config ""
ok "the guest is alive; shutdown is the runner's check"
