# Writes the victim does not make through a call it is in: a hardirq and a
# softirq on the victim's own CPU (timers pinned there while it spins with
# preemption off), a callee 48 frames down, and a second mapping of the
# stack page. Each interrupt write is one hit naming ksw_test_corrupt and
# its context; the deep callee's is one hit; the alias write cannot be seen
# and the frame dies "changed". `ksw report` names the hardirq and the
# silent corruption.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
KSW=$PWD/target/release/ksw
[ -x "$KSW" ] || fail "no $KSW: run make tools"
FOREIGN=0xf0e1d2c3

# one_frame WHAT: the trace holds exactly one frame; sets arm, hit, disarm
# (hit empty if none) and checks their ids agree.
one_frame() {
	local ev
	ev=$(events)
	expect "$(count ' ksw_arm: ' "$ev")" 1 "$1: arm events"
	expect "$(count ' ksw_disarm: ' "$ev")" 1 "$1: disarm events"
	arm=$(grep ' ksw_arm: ' <<<"$ev")
	disarm=$(grep ' ksw_disarm: ' <<<"$ev")
	hit=$(grep ' ksw_hit: ' <<<"$ev" || true)
	expect "$(field "$disarm" id)" "$(field "$arm" id)" "$1: disarm carries the arm's id"
}
# caught WHAT CONTEXT COMM PID OLD: one hit by ksw_test_corrupt, on the
# victim's CPU, in CONTEXT; the frame dies changed.
caught() {
	expect "$(count ' ksw_hit: ' "$hit")" 1 "$1: exactly one hit"
	expect "$(field "$hit" id)" "$(field "$arm" id)" "$1: hit carries the arm's id"
	expect_match "$hit" ' writer=ksw_test_corrupt\+0x[0-9a-f]+/' "$1: writer symbol"
	expect "$(field "$hit" context)" "$2" "$1: writer context"
	expect "$(field "$hit" victim)" "$3/$4" "$1: victim"
	expect "$(field "$hit" writer_comm)" "$3" "$1: writer_comm is the interrupted victim"
	expect "$(field "$hit" old)" "$5" "$1: old value"
	expect "$(field "$hit" new)" $FOREIGN "$1: new value"
	expect "$(cpu_of "$hit")" "$(cpu_of "$arm")" "$1: the write came on the victim's CPU"
	expect "$(field "$disarm" hits)" 1 "$1: hits in the window"
	expect "$(field "$disarm" arm_value)" "$5" "$1: value at arm"
	expect "$(field "$disarm" exit_value)" $FOREIGN "$1: value when the frame died"
	expect "$(field "$disarm" corrupted)" changed "$1: corrupted verdict"
	expect "$(field "$disarm" reason)" return "$1: disarm reason"
}
cpu_of() { sed -E 's/^.*\[0*([0-9]+)\] .*$/\1/' <<<"$1"; }
snap=$(counters)

# Hardirq: recorded with ksw record at the same time as tracefs.
ksw_config "$(watch_local ksw_test_irq_victim)"
trace_start
err=$($KSW record -g -o /tmp/hardirq.data -- sh -c 'echo hardirq >/proc/kstackwatch_test' 2>&1 >/dev/null) || fail "ksw record hardirq: $err"
expect_match "$err" '3 events \(1 arm, 1 hit, 1 disarm\), 0 lost' "hardirq: ksw record summary"
out=$(cat /proc/kstackwatch_test)
expect "$(field "$out" scenario)" hardirq "hardirq scenario ran"
expect "$(field "$out" bad_words)" 1 "hardirq: the victim saw its word changed"
pid=$(field "$out" victim_pids)
one_frame hardirq
caught hardirq hardirq/victim ksw-hardirq "$pid" 0x5008
text=$($KSW report -i /tmp/hardirq.data) || fail "ksw report hardirq"
echo "$text"
expect_match "$text" '^1 corruption of 1 victim by 1 writer$' "hardirq report: summary"
expect_match "$text" "task     ksw-hardirq/$pid on cpu $(cpu_of "$arm")" "hardirq report: victim task"
expect_match "$text" "verdict  HIT: 1 write\(s\) caught, by hardirq on the victim's CPU \(interrupting ksw-hardirq/$pid\); value changed$" "hardirq report: verdict names the hardirq on the victim's CPU"
expect_match "$text" "watch [0-9]+ \(ksw-hardirq/$pid\): 0x5008 -> $FOREIGN at 0x[0-9a-f]+ \[hardirq on the victim's CPU, interrupting it\]$" "hardirq report: the hit line"
expect_match "$text" '^        ksw_test_hrtimer_fn\+0x[0-9a-f]+ \[kstackwatch_test\]$' "hardirq report: the writer's chain runs through the hrtimer callback"
expect_match "$text" '^        (__sysvec_apic_timer_interrupt|hrtimer_interrupt)\+' "hardirq report: ... from the timer interrupt"
$KSW report -i /tmp/hardirq.data --format json >/tmp/hardirq.json || fail "ksw report --format json"
python3 - "$pid" /tmp/hardirq.json <<'PY' || fail "hardirq JSON report"
import json, sys
r, pid = json.load(open(sys.argv[2])), int(sys.argv[1])
v = r["victims"][0]
assert (v["function"], v["task"]["pid"], v["verdict"], v["hit_count"]) == ("ksw_test_irq_victim", pid, "hit", 1), v
h = v["hits"][0]
assert (h["context"], h["by_victim"], h["agreement"]) == ("hardirq", True, "agree"), h
assert h["instruction"].startswith("ksw_test_corrupt+"), h
PY
ok "hardirq JSON report: context hardirq, by the victim's CPU"

# Softirq: a pinned timer_list, run on irq exit on the victim's CPU.
trace_start
out=$(scenario softirq)
expect "$(field "$out" bad_words)" 1 "softirq: the victim saw its word changed"
one_frame softirq
caught softirq softirq/victim ksw-softirq "$(field "$out" victim_pids)" 0x5008

# A callee chain 48 frames deep writes the ancestor's local. The hit's
# kernel stack (ftrace stacktrace trigger) shows the whole chain.
ksw_config "$(watch_local ksw_test_deep_victim)"
trace_start
echo stacktrace >$T/events/kstackwatch/ksw_hit/trigger
out=$(scenario "deep 48")
echo '!stacktrace' >$T/events/kstackwatch/ksw_hit/trigger
expect "$(field "$out" depth)" 48 "deep: depth"
expect "$(field "$out" bad_words)" 1 "deep: the victim saw its word changed"
one_frame deep
expect_match "$hit" ' context=task/victim ' "deep: the victim task wrote"
expect "$(count ' ksw_hit: ' "$hit")" 1 "deep: exactly one hit"
expect_match "$hit" ' writer=ksw_test_corrupt\+' "deep: writer symbol"
expect "$(field "$hit" new)" $FOREIGN "deep: new value"
expect "$(field "$disarm" hits)" 1 "deep: hits in the window"
expect "$(field "$disarm" corrupted)" changed "deep: corrupted verdict"
stack=$(grep -E '^ *=> ' $T/trace | sed -E 's/^ *=> ([^+ ]+).*/\1/' | grep -E '^ksw_test_(corrupt|deep_write|deep_victim)$' | uniq -c | awk '{ print $2 "x" $1 }' | tr '\n' ' ')
expect "$stack" "ksw_test_corruptx1 ksw_test_deep_writex49 ksw_test_deep_victimx1 " "deep: the hit's stack: the writer, the 49 levels (48 .. 0), the victim"

# Through a vmap() alias of the stack page: no watchpoint can see it, the
# frame dies changed, and the report calls it a silent corruption.
ksw_config "$(watch_local ksw_test_alias_victim)"
trace_start
before=$(counters)
err=$($KSW record -g -o /tmp/alias.data -- sh -c 'echo alias >/proc/kstackwatch_test' 2>&1 >/dev/null) || fail "ksw record alias: $err"
expect_match "$err" '2 events \(1 arm, 0 hit, 1 disarm\), 0 lost' "alias: ksw record summary"
out=$(cat /proc/kstackwatch_test)
expect "$(field "$out" scenario)" alias "alias scenario ran"
expect "$(field "$out" bad_words)" 1 "alias: the victim saw its word changed"
one_frame alias
expect "$hit" "" "alias: no hit"
expect "$(field "$disarm" hits)" 0 "alias: hits in the window"
expect "$(field "$disarm" arm_value)" 0x7008 "alias: value at arm"
expect "$(field "$disarm" exit_value)" $FOREIGN "alias: value when the frame died"
expect "$(field "$disarm" corrupted)" changed "alias: corrupted verdict"
expect "$(field "$disarm" reason)" return "alias: disarm reason"
expect "$(since hits "$before")" 0 "alias: hits counter"
expect "$(since corrupted "$before")" 1 "alias: corrupted counter"
text=$($KSW report -i /tmp/alias.data) || fail "ksw report alias"
echo "$text"
expect_match "$text" '^1 corruption of 1 victim by 0 writers$' "alias report: summary"
expect_match "$text" '^  1 watched frame\(s\): 0 hit, 1 silently corrupted, 0 clean, 0 still armed$' "alias report: frame counts"
expect_match "$text" "watch $(field "$arm" id): ksw_test_alias_victim \(probe ksw_test_alias_victim\+0x[0-9a-f]+ \[kstackwatch_test\], depth 0\)" "alias report: the frame"
expect_match "$text" "value    0x7008 at arm -> $FOREIGN at exit" "alias report: values"
expect_match "$text" "verdict  SILENTLY CORRUPTED: 0x7008 at arm, $FOREIGN when the frame died, and no write was caught$" "alias report: silently corrupted verdict"
expect_match "$text" '\(no write caught\)' "alias report: no writer"

expect "$(since arms "$snap")" 4 "arms counter"
expect "$(since disarms "$snap")" 4 "disarms counter"
expect "$(since hits "$snap")" 3 "hits counter"
expect "$(since corrupted "$snap")" 4 "corrupted counter"
expect "$(since self_hits "$snap")" 0 "self_hits counter"
expect "$(since stale_hits "$snap")" 0 "stale_hits counter"
expect_releases_clean "foreign writers" "$snap"
