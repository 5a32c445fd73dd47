# The silent cross-thread corruption: buggy() leaks a stack address and
# returns, victim() reuses the slot, a writer on another CPU writes through
# the stale pointer. Caught with tracefs and with `perf record -g`: the hit
# names the writer (comm, pid, CPU, function, call chain) and the victim.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
trace_start
ksw_config "$(watch_local ksw_test_victim)"
out=$(scenario silent)
expect "$(field "$out" overlap)" 1 "victim reuses the buggy frame's slot"
expect "$(field "$out" unhappy)" 1 "victim found its buffer changed"
vpid=$(field "$out" victim_pids)
wpid=$(field "$out" writer_pid)
wcpu=$(field "$out" writer_cpu)
ev=$(events)
arm=$(grep ' ksw_arm: ' <<<"$ev")
hit=$(grep ' ksw_hit: ' <<<"$ev")
disarm=$(grep ' ksw_disarm: ' <<<"$ev")
expect_match "$arm" "^ *ksw-victim-$vpid " "armed in the victim's context"
expect_match "$hit" "^ *ksw-writer-$wpid +\[00$wcpu\]" "hit in the writer's context and CPU"
acpu=$(sed -E 's/.*\[0*([0-9]+)\].*/\1/' <<<"$arm")
[ "$acpu" != "$wcpu" ] || fail "writer and victim ran on the same CPU ($acpu)"
ok "the write came from another CPU ($wcpu vs $acpu)"
expect "$(field "$hit" victim)" "ksw-victim/$vpid" "victim comm/pid in the hit"
expect "$(field "$hit" writer_comm)" ksw-writer "writer comm in the hit"
expect "$(field "$hit" context)" task "another task wrote (not the victim, not an interrupt)"
expect_match "$hit" 'writer=ksw_test_corrupt\+' "writer function"
expect "$(field "$hit" old)" "$(field "$arm" value)" "old value is the value at arm"
expect "$(field "$hit" new)" 0xabcdabcd "written value"
expect "$(field "$disarm" hits)" 1 "hits in the window"
expect "$(field "$disarm" exit_value)" 0xabcdabcd "value when the frame died"
expect "$(field "$disarm" corrupted)" changed "silent corruption verdict"
expect "$(field "$disarm" reason)" return "disarm reason"
expect_releases_clean "victim returned"

# perf: the same scenario recorded with call chains on the mono clock.
perf record -q -e 'kstackwatch:*' -g -k mono -a -o /tmp/silent.data -- \
	sh -c 'echo silent > /proc/kstackwatch_test' 2>/dev/null || fail "perf record"
perf script -i /tmp/silent.data -F tid,event,ip 2>/dev/null >/tmp/silent.txt
python3 - <<'PY' || fail "perf call chain of the hit does not name the writer"
import bisect
syms = sorted((int(a, 16), n) for a, k, n, *_ in (l.split() for l in open("/proc/kallsyms")) if k in "tT")
keys = [a for a, _ in syms]
def sym(addr):
    i = bisect.bisect_right(keys, addr) - 1
    return syms[i][1] if i >= 0 else "?"
blocks = open("/tmp/silent.txt").read().split("\n\n")
hit = [b for b in blocks if "ksw_hit" in b]
assert len(hit) == 1, f"{len(hit)} hit samples"
chain = [sym(int(w, 16)) for w in hit[0].split()[2:] if all(c in "0123456789abcdef" for c in w)]
print("writer chain:", " <- ".join(chain[:16]))
assert "ksw_test_corrupt" in chain, chain
assert any("writer_thread" in s for s in chain), chain
PY
ok "perf -g call chain runs through ksw_test_corrupt and the writer thread"
