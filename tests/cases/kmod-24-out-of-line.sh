# A write by the very instruction the arming kprobe sits on. When only the
# probe point leads to the next instruction, the module arms from a pre
# handler there (optimizable), and that instruction then runs from the
# kprobe's out-of-line copy: first its single-step slot, and once the
# kernel has jump-optimized the probe, its detour buffer. The write must be
# reported with the writer's address in the function's own text, flagged
# out-of-line, in both forms. The two stores come from the built object:
# the first store to the frame after the prologue is the probe point, the
# next one writes the watched slot.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh

d=$(disasm ksw_test_victim)
read -r fo so after < <(python3 - <<PY
import re
lines = """$d""".splitlines()
def store(l):
    m = re.match(r"^(0x[0-9a-f]+)\tmov[q]?\s+\S+,(0x[0-9a-f]+)?\(%rsp\)$", l)
    return m and (m.group(1), m.group(2) or "0x0")
for a, b, c in zip(lines, lines[1:], lines[2:]):
    if store(a) and store(b):
        print(store(a)[0], store(b)[1], c.split("\t")[0])
        break
PY
) || true
if [ -z "$after" ] && grep -q ' kasan_report$' /proc/kallsyms; then
	# KASAN builds clear the buffer with a memset call and check each
	# access: the victim's shape (two stores in a row) does not exist there.
	echo "skip: a KASAN build has no two consecutive stores to the frame in ksw_test_victim"
	exit 0
fi
[ -n "$after" ] || fail "no two consecutive stores to the frame in ksw_test_victim"
ok "ksw_test_victim: store at +$fo, the next one writes sp+$so and ends at +$after"

check_hit() { # check_hit WHAT
	local hits
	hits=$(events | grep ' ksw_hit: ' || true)
	expect_match "$hits" "writer=ksw_test_victim\+$after/0x[0-9a-f]+ \[kstackwatch_test\]\(out-of-line\) context=task/victim old=0x[0-9a-f]+ new=0x0 " "$1: the write reported at ksw_test_victim+$after, out-of-line"
	! grep -q 'writer=0x' <<<"$hits" || fail "$1: a writer address outside the text: $hits"
	ok "$1: every writer address in the text"
}

# The single-step slot: with optimization off, every hit goes through int3.
opt=/proc/sys/debug/kprobes-optimization
[ -w $opt ] || fail "no $opt (CONFIG_OPTPROBES)"
echo 0 >$opt
trace_start
ksw_config "fn=ksw_test_victim fo=$fo so=$so wl=8"
expect_match "$(spec_line)" "arms at \+$fo \[pre-handler probe\]" "armed from a pre handler on the next instruction (int3)"
scenario "clean 1" >/dev/null
check_hit "single-step slot"

# Queued for optimization: the kernel marks the probe optimized at once
# but writes the jump only after a delay and an RCU-tasks grace period;
# hits meanwhile come through int3 and must arm (they were once all taken
# for NMI hits and dropped).
echo 1 >$opt
ksw_config ""
snap=$(counters)
trace_start
ksw_config "fn=ksw_test_victim fo=$fo so=$so wl=8"
scenario "clean 1" >/dev/null
check_hit "queued for optimization"
expect "$(since nmi_context "$snap")" 0 "no hit taken for an NMI one"

# The detour buffer: the optimizer runs a few jiffies after it is allowed.
for _ in $(seq 50); do
	spec_line | grep -q '\[optimized probe\]' && break
	sleep 0.1
done
expect_match "$(spec_line)" "arms at \+$fo \[optimized probe\]" "the kernel jump-optimized the arming probe"
trace_start
scenario "clean 1" >/dev/null
check_hit "optimized detour buffer"
ksw_config ""
expect_all_idle "after the watch is removed"
