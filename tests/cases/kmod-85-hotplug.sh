# CPU hotplug keeps the watch live on every online CPU: a CPU taken down
# and brought back while a frame is armed watches it again, and a write
# from that CPU is caught. A CPU that comes online while someone holds all
# its breakpoints comes up anyway, unwatched and counted; the other CPUs
# keep watching; once the breakpoints are free, the next online gets them.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
cpu_line() { grep "^# cpu$1:" /proc/kstackwatch || true; }
trace_start
ksw_config "$(watch_local ksw_test_victim)"
echo "silent 1 $((3000 * SLOW))" >/proc/kstackwatch_test &
for _ in $(seq 50); do grep -q ' 1 armed$' /proc/kstackwatch && break; sleep 0.1; done
grep -q ' 1 armed$' /proc/kstackwatch || fail "victim never armed"
echo 0 >/sys/devices/system/cpu/cpu1/online || fail "offline cpu1"
grep -q '^# cpu1:' /proc/kstackwatch && fail "offline cpu1 still listed"
ok "cpu1 offline, its breakpoints released"
echo 1 >/sys/devices/system/cpu/cpu1/online || fail "online cpu1"
expect_match "$(cpu_line 1)" 'slot0=0x' "re-onlined cpu1 watches the armed frame"
wait
out=$(cat /proc/kstackwatch_test)
expect "$(field "$out" writer_cpu)" 1 "the writer ran on cpu1"
ev=$(events)
expect "$(count ' ksw_hit: ' "$ev")" 1 "the write from the re-onlined CPU is caught"
hit=$(grep ' ksw_hit: ' <<<"$ev")
expect_match "$hit" '\[001\]' "hit on cpu1"
expect "$(field "$hit" context)" task "written by another task"
expect "$(field "$(grep ' ksw_disarm: ' <<<"$ev")" corrupted)" changed "corrupted verdict"
expect "$(counter cpus_without_slots)" 0 "every CPU got its breakpoints"

# The hog takes all four breakpoints of every CPU coming online, before
# kstackwatch's own hotplug callback runs (its hotplug state is older:
# kstackwatch must claim its slots after `hog on`, hence the release).
ksw_config ""
scenario "hog on" >/dev/null
cfg=$(watch_local ksw_test_direct_victim)
ksw_config "$cfg"
expect_match "$(head -1 /proc/kstackwatch)" ' 4 of 4 hardware slot\(s\) claimed' "all four slots claimed"
echo 0 >/sys/devices/system/cpu/cpu1/online || fail "offline cpu1 (hog on)"
echo 1 >/sys/devices/system/cpu/cpu1/online || fail "online cpu1 failed while its breakpoints were taken"
ok "cpu1 came online although its breakpoints were taken"
expect "$(counter cpus_without_slots)" 1 "the CPU without slots is counted"
expect "$(cpu_line 1)" "# cpu1: slot0=none slot1=none slot2=none slot3=none" "/proc: cpu1 has no breakpoint"
expect "$(cpu_line 0)" "# cpu0: slot0=parked slot1=parked slot2=parked slot3=parked" "/proc: cpu0 keeps its four"

# `direct` runs on the last CPU, cpu1: it arms there, its write is not
# seen (no breakpoint), the frame is still judged when it dies.
trace_start
out=$(scenario direct)
ev=$(events)
expect_match "$(grep ' ksw_arm: ' <<<"$ev")" '\[001\]' "direct: armed on cpu1"
expect "$(count ' ksw_hit: ' "$ev")" 0 "direct on cpu1: the write is not seen there"
disarm=$(grep ' ksw_disarm: ' <<<"$ev")
expect "$(field "$disarm" hits)" 0 "direct on cpu1: no hit in the window"
expect "$(field "$disarm" exit_value)" 0xd1ec7 "direct on cpu1: value when the frame died"
expect "$(field "$disarm" corrupted)" changed "direct on cpu1: judged changed at death"

# CPU 0 still watches: with cpu1 down, `direct` runs on CPU 0 and is caught.
echo 0 >/sys/devices/system/cpu/cpu1/online || fail "offline cpu1 (no slots)"
trace_start
out=$(scenario direct)
ev=$(events)
expect "$(count ' ksw_hit: ' "$ev")" 1 "direct on cpu0: the write is caught"
hit=$(grep ' ksw_hit: ' <<<"$ev")
expect_match "$hit" '\[000\]' "direct on cpu0: hit on cpu0"
expect "$(field "$hit" context)" task/victim "direct on cpu0: the victim wrote"
expect "$(field "$hit" victim)" "ksw-direct/$(field "$out" victim_pids)" "direct on cpu0: victim"

# Breakpoints free again: cpu1 gets its four when it comes back, and catches.
scenario "hog off" >/dev/null
echo 1 >/sys/devices/system/cpu/cpu1/online || fail "online cpu1 (hog off)"
expect "$(cpu_line 1)" "# cpu1: slot0=parked slot1=parked slot2=parked slot3=parked" "/proc: cpu1 has its breakpoints back"
expect "$(counter cpus_without_slots)" 1 "no new CPU without slots"
trace_start
out=$(scenario direct)
ev=$(events)
expect "$(count ' ksw_hit: ' "$ev")" 1 "direct on cpu1 again: the write is caught"
expect_match "$(grep ' ksw_hit: ' <<<"$ev")" '\[001\]' "direct on cpu1 again: hit on cpu1"
expect "$(counter arms)" "$(counter disarms)" "arms == disarms"
expect_releases_clean "hotplug"
