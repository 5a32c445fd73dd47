# ksw sweep: find the victim without knowing it. The test module's `sweep`
# scenario runs call chains through 24 canary-protected look-alikes
# (ksw_test_sweep_0..23); one, chosen at random per run, overflows its
# buffer over its canary (and puts it back) at a random depth. `ksw sweep
# --module kstackwatch_test` must name that function (sampling may miss
# it: bounded retries) and the overflow as the writer, list the module's
# functions it cannot watch as skipped, arm about one in N eligible calls,
# and put the previous configuration back; refused sweeps (a bad glob, an
# empty match, functions the module cannot watch) say why and leave it as
# it was.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
KSW=$PWD/target/release/ksw
SCENARIO='echo "sweep 200" > /proc/kstackwatch_test'
specs() { grep -v '^#' /proc/kstackwatch || true; }

# A configuration of someone else's, which every sweep must leave as it was.
ksw_config "$(watch_local ksw_test_victim)"
before=$(specs)
[ -n "$before" ] || fail "no previous configuration to keep"

# 1. Refused in userspace, before /proc/kstackwatch is touched.
err=$($KSW sweep --function 'ksw_test_[ab]*' -o /tmp/x.data -- true 2>&1) && fail "a bad glob was accepted: $err"
expect_match "$err" "^ksw: --function 'ksw_test_\[ab\]\*' is not a function name or glob" "a bad glob is named"
err=$($KSW sweep --module kstackwatch_test --function 'no_such_fn_*' -o /tmp/x.data -- true 2>&1) && fail "an empty match was accepted: $err"
expect_match "$err" "^ksw: --function 'no_such_fn_\*' matches no traceable function of module kstackwatch_test" "an empty match names the pattern"
err=$($KSW sweep --module no_such_module -o /tmp/x.data -- true 2>&1) && fail "a missing module was accepted: $err"
expect_match "$err" "^ksw: --module no_such_module: none of its functions is in available_filter_functions" "a missing module is named"
[ ! -e /tmp/x.data ] || fail "a refused sweep recorded"
expect "$(specs)" "$before" "the previous configuration is untouched by refused sweeps"

# 2. Refused by the module (no function of the list can be watched): the
# errno and the module's own reason from the kernel log.
err=$($KSW sweep --function ksw_test_fill --function ksw_test_count_bad -o /tmp/x.data -- true 2>&1) && fail "an unwatchable sweep was accepted: $err"
echo "$err"
expect_match "$err" '^ksw: kstackwatch refused the sweep \(errno [0-9]+, [^)]+\): ' "the errno of a refused sweep"
expect_match "$err" 'config rejected: line 1: none of the 2 functions can be watched' "the module's reason from the kernel log"
expect_match "$err" 'the previous configuration is untouched$' "says the configuration stands"
expect "$(specs)" "$before" "the previous configuration is untouched by a refused spec"

# 3. The sweep, until the sampled frames include the victim's.
first=$(counters)
snap=$first
found=
for run in 1 2 3 4 5; do
	out=$($KSW sweep --module kstackwatch_test -g -o /tmp/sweep.data -- sh -c "$SCENARIO" 2>/tmp/sweep.err) ||
		fail "ksw sweep (run $run): $(cat /tmp/sweep.err)"
	scen=$(cat /proc/kstackwatch_test)
	cat /tmp/sweep.err
	echo "$out"
	echo "$scen"
	expect "$(specs)" "$before" "run $run: the previous configuration is back"
	if grep -q '^ksw sweep: victim found: ' <<<"$out"; then
		found=$run
		break
	fi
	expect_match "$out" '^ksw sweep: no corruption seen in [0-9]+ sampled frame\(s\) of [0-9]+ function\(s\)' "run $run: no victim sampled, said so"
done
[ -n "$found" ] || fail "no victim found in 5 sweeps of 200 rounds"
ok "victim found in run $found"
victim=$(field "$scen" victim)
vpid=$(field "$scen" victim_pids)
[ "$(field "$scen" corruptions)" = 200 ] || fail "the scenario did not corrupt every round: $scen"
expect "$(grep -c '^ksw sweep: victim found: ' <<<"$out")" 1 "one victim function"
expect_match "$out" "^ksw sweep: victim found: $victim \(frame of task ksw-sweep/$vpid, depth 0\), written by ksw_test_overflow\+0x[0-9a-f]+ \[kstackwatch_test\] in ksw-sweep/$vpid \(the victim task itself\); [0-9]+ write\(s\) in [0-9]+ of [0-9]+ sampled frame\(s\)" "the scenario's victim, written by the overflow"
err=$(cat /tmp/sweep.err)
expect_match "$err" '^ksw sweep: [0-9]+ function\(s\) of module kstackwatch_test from /sys/kernel/tracing/available_filter_functions' "the candidates"
expect_match "$err" '^ksw sweep: watching the canary of [0-9]+ of [0-9]+ function\(s\), sample 1 in 16; [0-9]+ skipped: .*[0-9]+ no stack-protector canary \(' "functions without a canary listed as skipped"
expect_match "$err" 'the previous configuration \(1 spec\(s\)\) is set aside, and restored after' "the previous configuration set aside"

# The report: its sweep section, the victim function first.
text=$($KSW report -i /tmp/sweep.data) || fail "ksw report"
section=$(sed -n '/^Sweep: /,/^Victim frames/p' <<<"$text")
echo "$section"
expect_match "$section" '^Sweep: [0-9]+ function\(s\) watched \(sample 1 in 16; [0-9]+ listed, [0-9]+ skipped\)' "report: the sweep section"
expect_match "$(sed -n 3p <<<"$section")" "^    $victim \(frame of task ksw-sweep/$vpid, depth 0\), written by ksw_test_overflow\+" "report: the victim function first"
expect_match "$text" '[0-9]+ x ksw_test_overflow\+0x[0-9a-f]+ \[kstackwatch_test\] on cpu' "report: the overflow among the writers"
$KSW report -i /tmp/sweep.data --format json >/tmp/sweep.json || fail "ksw report --format json"
prog=$(cat <<'PY'
import json, sys
r = json.load(open("/tmp/sweep.json"))
victim, vpid = sys.argv[1], int(sys.argv[2])
s = r["sweep"]
assert s is not None, "no sweep member"
v = s["victims"][0]
assert v["function"] == victim, v
assert v["task"]["pid"] == vpid, v
assert v["writer_instruction"].startswith("ksw_test_overflow+"), v
assert s["sample"] == 16, s["sample"]
# ksw_test_fill has no frame, ksw_test_thread_fn no canary: both skipped.
skipped = {k["function"]: k["reason"] for k in s["skipped"]}
assert "ksw_test_thread_fn" in skipped and "canary" in skipped["ksw_test_thread_fn"], skipped
assert "ksw_test_fill" in skipped, skipped
# The look-alikes are watched, the victim among the functions sampled.
assert s["functions"]["watched"] >= 24, s["functions"]
assert victim in [f["function"] for f in s["per_function"]], s["per_function"]
PY
)
python3 -c "$prog" "$victim" "$vpid" || fail "JSON sweep member"
ok "JSON: the sweep member names the victim and the skipped functions"

# 4. Sampling: over the runs above, the module picked about one in 16 of
# the eligible calls (binomial bounds, 5 sigma); and once more with
# --sample 4 over the look-alikes only (globs: ksw_test_sweep_* would
# also take ksw_test_sweep_call and ksw_test_sweep_run).
sampled_ok() { # sampled_ok SNAPSHOT N WHAT
	local picked eligible
	picked=$(( $(since arms "$1") + $(since dropped_no_slot "$1") + $(since dropped_max_watch "$1") + $(since canary_not_found "$1") ))
	eligible=$(( picked + $(since not_sampled "$1") ))
	python3 - "$picked" "$eligible" "$2" <<'PY' || fail "$3: $picked of $eligible eligible calls picked, asked 1 in $2"
import math, sys
picked, eligible, n = map(int, sys.argv[1:])
p = 1 / n
mean, sd = eligible * p, math.sqrt(eligible * p * (1 - p))
assert eligible >= 500, "too few eligible calls to judge"
assert abs(picked - mean) <= 5 * sd + 1, (picked, mean, sd)
print("ok: %d of %d eligible calls picked (1 in %.1f; asked 1 in %d)" % (picked, eligible, eligible / max(picked, 1), n))
PY
}
sampled_ok "$snap" 16 "sample 1 in 16"
expect_match "$out" '^ksw sweep: sampling: [0-9]+ of [0-9]+ eligible call\(s\) picked \(1 in [0-9.]+; asked 1 in 16\)' "ksw sweep reports the sampling"
snap=$(counters)
out=$($KSW sweep --function 'kstackwatch_test:ksw_test_sweep_?' --function 'ksw_test_sweep_??' --sample 4 -o /tmp/sweep4.data -- sh -c "$SCENARIO" 2>/tmp/sweep4.err) ||
	fail "ksw sweep --sample 4: $(cat /tmp/sweep4.err)"
cat /tmp/sweep4.err
echo "$out"
expect_match "$(cat /tmp/sweep4.err)" '^ksw sweep: watching the canary of 24 of 24 function\(s\), sample 1 in 4; none skipped' "a glob: the 24 look-alikes, all watched"
sampled_ok "$snap" 4 "sample 1 in 4"
expect "$(specs)" "$before" "the previous configuration is back after the last sweep"
expect_releases_clean "sweeps" "$first"
