# CPU hotplug keeps the watch live on every online CPU: a CPU taken down
# and brought back while a frame is armed watches it again, and a write
# from that CPU is caught.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
trace_start
ksw_config "$(watch_local ksw_test_victim)"
echo "silent 1 $((3000 * SLOW))" >/proc/kstackwatch_test &
for _ in $(seq 50); do grep -q ' 1 armed$' /proc/kstackwatch && break; sleep 0.1; done
grep -q ' 1 armed$' /proc/kstackwatch || fail "victim never armed"
echo 0 >/sys/devices/system/cpu/cpu1/online || fail "offline cpu1"
grep -q '^# cpu1:' /proc/kstackwatch && fail "offline cpu1 still listed"
ok "cpu1 offline, its breakpoints released"
echo 1 >/sys/devices/system/cpu/cpu1/online || fail "online cpu1"
expect_match "$(grep '^# cpu1:' /proc/kstackwatch)" 'slot0=0x' "re-onlined cpu1 watches the armed frame"
wait
out=$(cat /proc/kstackwatch_test)
expect "$(field "$out" writer_cpu)" 1 "the writer ran on cpu1"
ev=$(events)
expect "$(count ' ksw_hit: ' "$ev")" 1 "the write from the re-onlined CPU is caught"
expect_match "$(grep ' ksw_hit: ' <<<"$ev")" '\[001\]' "hit on cpu1"
