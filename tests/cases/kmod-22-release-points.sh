# Frames released where their slot dies, thousands of times, with nothing
# written: a canary watch armed after the prologue of a small hot function
# with a realigned frame (the canary is its top slot), called 10000 times
# back to back by the writing task itself; and a function that leaves
# through a return or a tail call, watched on a saved register. Every arm
# has its disarm, no hit, nothing corrupted, nothing left to the return
# hook. The guest keeps running new processes afterwards (this once wedged
# it: kmod-23 does it on one CPU).
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
c=$(trace-scripts/ksw-probe-point --canary "$TEST_KO" ksw_test_small)
disp=$(field "$c" canary_disp)

trace_start 8192
ksw_config "fn=ksw_test_small"
expect_match "$(grep '^func_name=' /proc/kstackwatch)" '^func_name=ksw_test_small depth=0 max_watch=0 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0$' "spec read back: no func_offset, the canary"
expect_match "$(spec_line)" "arms at \+0x[0-9a-f]+ \(after the prologue\)( \[[a-z -]+\])?, watches the canary at sp\+$disp " "/proc: armed after the prologue, the canary at sp+$disp (objdump)"
expect "$(counter arms)" 0 "fresh module: no arm yet"
out=$(scenario "loop 10000")
expect "$(field "$out" calls)" 10000 "calls"
pid=$(field "$out" pid)
expect "$(counter arms)" 10000 "loop: arms"
expect "$(counter disarms)" 10000 "loop: disarms"
expect "$(counter hits)" 0 "loop: hits"
expect "$(counter corrupted)" 0 "loop: corrupted"
expect "$(counter self_hits)" 0 "loop: self_hits"
expect "$(counter stale_hits)" 0 "loop: stale_hits"
expect "$(counter dropped_no_slot)" 0 "loop: dropped_no_slot"
expect_releases_clean "loop"
# Every event: armed at sp+canary_disp, withheld value, released intact on
# return, in the writing task.
events >/tmp/loop.events
python3 - "$disp" "$pid" /tmp/loop.events <<'PY' || fail "loop events"
import re, sys
disp, pid = int(sys.argv[1], 16), sys.argv[2]
arms, disarms = {}, {}
for line in open(sys.argv[3]):
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    task = re.match(r"\s*(\S+)\s+\[", line).group(1)
    assert task.endswith("-" + pid), f"event outside the writing task: {line}"
    if " ksw_arm: " in line:
        assert int(kv["addr"], 16) - int(kv["sp"], 16) == disp, f"addr - sp != {disp:#x}: {line}"
        assert kv["value"] == "canary/0x0" and kv["probe"].startswith("ksw_test_small+"), line
        arms[kv["id"]] = line
    elif " ksw_disarm: " in line:
        assert (kv["arm_value"], kv["exit_value"], kv["hits"], kv["corrupted"], kv["reason"]) == (
            "canary/0x0", "canary/0x0", "0", "intact", "return"), line
        disarms[kv["id"]] = line
    else:
        raise AssertionError(f"unexpected event: {line}")
assert len(arms) == 10000, f"{len(arms)} arm events"
assert arms.keys() == disarms.keys(), "arm and disarm ids differ"
print("10000 arms at sp+%#x, 10000 intact disarms" % disp)
PY
ok "every arm at sp+canary_disp, every disarm intact on return"

# The same watch, 2000 calls more, then new processes.
scenario "loop 2000" >/dev/null
expect "$(counter arms)" 12000 "loop 2000: arms"
expect "$(counter disarms)" 12000 "loop 2000: disarms"
expect_releases_clean "loop 2000"
/bin/true || fail "/bin/true after the loop"
expect_match "$(date +%Y)" '^20[0-9][0-9]$' "date runs after the loop"

# A return and a tail call: check the object has both shapes.
d=$(disasm ksw_test_exits)
echo "$d"
expect_match "$d" $'^0x[0-9a-f]+\tret' "ksw_test_exits returns with ret"
expect_match "$d" $'^0x[0-9a-f]+\tjmp .*\t-> ksw_test_tail_target$' "ksw_test_exits tail-calls ksw_test_tail_target"
pops=$(grep -P '^0x[0-9a-f]+\tpop +%rbx$' <<<"$d" | cut -f1 | sed 's/^/+/' | tr '\n' ' ' | sed 's/ $//')
expect "$(wc -w <<<"$pops")" 2 "ksw_test_exits restores %rbx on both ways out"
trace_start
ksw_config "fn=ksw_test_exits so=0 wl=8"
expect_match "$(spec_line)" 'arms at \+0x[0-9a-f]+ \(after the prologue\)( \[[a-z -]+\])?, watches 8 bytes at sp\+0x0 ' "exits: /proc: armed after the prologue, sp+0"
expect "$(release_offsets)" "$pops" "exits: released on the two pops of the saved %rbx"
snap=$(counters)
out=$(scenario "exits 1000")
expect "$(field "$out" calls)" 1000 "exits: calls"
expect "$(since arms "$snap")" 1000 "exits: arms"
expect "$(since disarms "$snap")" 1000 "exits: disarms"
expect "$(since hits "$snap")" 0 "exits: hits"
expect "$(since corrupted "$snap")" 0 "exits: corrupted"
expect_releases_clean "exits" "$snap"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 1000 "exits: arm events"
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -c ' hits=0 corrupted=intact reason=return$')" 1000 "exits: intact disarms on return"
/bin/true || fail "/bin/true after exits"
ok "new processes run"
