#!/usr/bin/env bash
# `make bench`, kernel side, inside the VM on the base kernel (kstackwatch
# and kstackwatch_test loaded). Writes OUT/kernel.json.
set -euo pipefail
OUT=$1
# func_offset for do_filp_open: after its canary store (from vmlinux, on the host).
FILP_PROBE=$2
. tests/lib/guest.sh
B=${KSW_BENCH_BATCHES:-200}
C=${KSW_BENCH_CALLS:-200}
ARM_B=${KSW_BENCH_ARM_BATCHES:-50}
ARM_C=${KSW_BENCH_ARM_CALLS:-20}
json() { python3 -c 'import json,sys; print(json.dumps(dict(kv.split("=",1) for kv in sys.argv[1].split()[1:])))' "$1"; }
probe=$(trace-scripts/ksw-probe-point "$TEST_KO" ksw_test_bench_victim)
fo=$(field "$probe" func_offset)
so=$(field "$probe" sp_offset)
spec="fn=ksw_test_bench_victim fo=$fo so=$so wl=8"
exec 3>"$OUT/kernel.json"
echo "{" >&3
emit() { echo "\"$1\": $2," >&3; echo "[bench] $1: $2" >&2; }

# 1. Per-call cost of the watched function.
emit call_no_watch "$(json "$(scenario "bench $B $C")")"
# Bare pair and non-arming kstackwatch alternate over short paired trials:
# the VM's speed drifts over seconds, and these two are compared with each
# other (the table takes the median of the per-trial ratios).
TB=$((B / 4))
# The release offsets kstackwatch probes, for the bare module to probe too.
ksw_config "$spec"
release=$(grep -o 'disarms at [^;]*' /proc/kstackwatch | sed 's/disarms at //; s/+//g; s/ /,/g')
[ -n "$release" ] || fail "no release offsets in /proc/kstackwatch"
ksw_config ""
for trial in $(seq 9); do
	insmod tests/vm/modules/ksw_bare_probes.ko func=ksw_test_bench_victim offset=$fo release=$release
	emit call_bare_probe_pair_t$trial "$(json "$(scenario "bench $TB $C")")"
	rmmod ksw_bare_probes
	ksw_config "$spec dp=5"
	emit call_probes_not_arming_t$trial "$(json "$(scenario "bench $TB $C")")"
	expect_match "$(counter other_depth)" '^[1-9]' "non-arming calls counted as other_depth"
	ksw_config ""
done
# Fresh module: the latency histograms then hold only this run's arms.
rmmod kstackwatch && insmod kmod/kstackwatch/kstackwatch.ko
ksw_config "$spec"
emit call_arming "$(json "$(scenario "bench $ARM_B $ARM_C")")"

# 2. Arm and disarm latency, local and cross-CPU, against the IPI floor.
hist() { grep "^# $1:" /proc/kstackwatch | sed "s/^# $1: //"; }
emit arm_local_ns "$(json "x $(hist arm_local_ns)")"
emit arm_window_ns "$(json "x $(hist arm_window_ns)")"
emit disarm_local_ns "$(json "x $(hist disarm_local_ns)")"
ksw_config ""
# The window again, on frames that outlive it: the bench victim returns
# before the other CPU has caught up with most arms, and a window is only
# recorded when a CPU applies a watch that is still armed, so the numbers
# above keep only the slow cases. Each `hold 1` frame lives 1 ms or more.
rmmod kstackwatch && insmod kmod/kstackwatch/kstackwatch.ko
ksw_config "$(watch_local ksw_test_hold_victim)"
for _ in $(seq 200); do scenario "hold 1" >/dev/null; done
emit arm_window_held_ns "$(json "x $(hist arm_window_ns)")"
ksw_config ""
emit ipi_roundtrip "$(json "$(scenario "ipi 2000")")"

# 3. The hot-function workload: open/close in a loop, do_filp_open watched
#    (its canary) at every call.
loop=target/release/syscall-loop
emit syscall_no_watch "$($loop 100 200)"

ksw_config "fn=do_filp_open fo=$FILP_PROBE"
emit syscall_watch_canary "$($loop 100 200)"
emit syscall_watch_counters "$(json "x $(grep '^# counters:' /proc/kstackwatch | sed 's/^# counters: //')")"
ksw_config ""

# 5. Sweeps: the victim unknown, every canary of a set watched, 1 call in 16.
# 5a. Reproductions until caught: the test module's 24 look-alikes, one of
#     them (chosen per trial) overflowing its canary once per reproduction
#     (`sweep 1`: call chains of depth 1..6, the victim at a random depth).
sweep_list=$(seq -s, -f 'ksw_test_sweep_%g' 0 23)
repros=()
for trial in $(seq "${KSW_BENCH_SWEEP_TRIALS:-30}"); do
	ksw_config "fn=$sweep_list ac=1 sa=16"
	snap=$(counters)
	victim=$((RANDOM % 24))
	n=0
	while [ "$(since hits "$snap")" = 0 ] && [ $n -lt 1000 ]; do
		scenario "sweep 1 $victim" >/dev/null
		n=$((n + 1))
	done
	[ "$(since hits "$snap")" != 0 ] || fail "sweep trial $trial: victim ksw_test_sweep_$victim not caught in $n reproductions"
	repros+=("$n")
	ksw_config ""
done
emit sweep_reproductions "{\"sample\": 16, \"functions\": 24, \"runs\": [$(IFS=,; echo "${repros[*]}")]}"

# 5b. The open/close loop under a sweep of fs/namei.c (its functions from
#     the built object, on the host; those without a canary are skipped).
sweep_config() { # sweep_config FILE SPEC_SUFFIX: one write, its time in ns
	python3 - "$1" "$2" <<'PY'
import os, sys, time
names = ",".join(l.strip() for l in open(sys.argv[1]) if l.strip())
data = f"fn={names} {sys.argv[2]}".encode()
fd = os.open("/proc/kstackwatch", os.O_WRONLY)
t0 = time.perf_counter_ns()
os.write(fd, data)
t1 = time.perf_counter_ns()
os.close(fd)
print(t1 - t0, len(data))
PY
}
sweep_summary() { grep -oE 'sweep of [0-9]+ function\(s\): [0-9]+ watched, [0-9]+ skipped' /proc/kstackwatch | head -1; }
sweep_counts() { # "watched": W, "skipped": S
	sweep_summary | sed -E 's/sweep of ([0-9]+) function\(s\): ([0-9]+) watched, ([0-9]+) skipped/"listed": \1, "watched": \2, "skipped": \3/'
}
read -r _ _ < <(sweep_config "$OUT/namei.list" "ac=1 sa=16")
namei_counts=$(sweep_counts)
emit syscall_sweep_namei "$($loop 100 200)"
emit syscall_sweep_namei_spec "{$namei_counts, \"armed\": $(grep -oE 'sweep of .*armed=[0-9]+' /proc/kstackwatch | head -1 | grep -oE '[0-9]+$')}"
ksw_config ""
# The probes alone (almost nothing armed): what the sweep costs a call it
# does not arm.
read -r _ _ < <(sweep_config "$OUT/namei.list" "ac=1 sa=1000000")
emit syscall_sweep_namei_probes_only "$($loop 100 200)"
ksw_config ""
emit syscall_no_watch_after_sweep "$($loop 100 200)"

# 5c. Configuration time: the first 100 and 1000 functions of the kernel
#     image that ftrace lists, as one sweep write; and the write that ends it.
for count in 100 1000; do
	# (sed, not head: head would end the pipeline early, a SIGPIPE.)
	grep -v '\[' /sys/kernel/tracing/available_filter_functions | awk '{print $1}' | sort -u | sed -n "1,${count}p" >/tmp/sweep-$count.list
	for trial in 1 2 3; do
		# Sampled sparsely: this measures configuring, not arming.
		read -r ns bytes < <(sweep_config /tmp/sweep-$count.list "ac=1 sa=1000000")
		counts=$(sweep_counts)
		t0=$(date +%s%N)
		ksw_config ""
		t1=$(date +%s%N)
		emit sweep_config_${count}_t$trial "{\"write_ns\": $ns, \"bytes\": $bytes, $counts, \"clear_ns\": $((t1 - t0))}"
	done
done

# 4. Recorders: the highest hit rate recorded with nothing lost. Hits are
#    perf breakpoint samples: lift perf's per-tick throttle so the recorders,
#    not the throttle, are what is measured. The rate first: the kernel
#    refuses it once the CPU-time limit is off.
echo 1000000 >/proc/sys/kernel/perf_event_max_sample_rate
echo 0 >/proc/sys/kernel/perf_cpu_time_max_percent
ksw_config "$(watch_local ksw_test_victim)"
rates='{'
# Three trials per recorder and gap, alternating, so that neither recorder
# gets the quieter moments of the VM.
for gap in 5000 1000 500 0; do
	for trial in 1 2 3; do
		for rec in ksw perf; do
			rm -f /tmp/rec.data
			if [ $rec = ksw ]; then
				target/release/ksw record -m 16 -o /tmp/rec.data -- sh -c "echo 'storm 20000 $gap' > /proc/kstackwatch_test" 2>/tmp/rec.err
			else
				perf record -q -m 16 -e 'kstackwatch:*' -k mono -a -o /tmp/rec.data -- sh -c "echo 'storm 20000 $gap' > /proc/kstackwatch_test" 2>/tmp/rec.err
			fi
			stats=$(target/release/ksw report -i /tmp/rec.data --format json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
hits = sum(v["hit_count"] for v in r["victims"])
ends = [(v["armed_ns"], v["disarmed_ns"] or v["armed_ns"]) for v in r["victims"]]
span = (max(e for _, e in ends) - min(a for a, _ in ends)) / 1e9 if ends else 0
print(json.dumps({"hits": hits, "lost": r["recording"]["lost"], "rate_per_s": round(hits / span) if span else 0}))')
			rates="$rates\"${rec}_gap_${gap}_t$trial\": $stats, "
			echo "[bench] $rec gap=$gap trial $trial: $stats" >&2
		done
	done
done
ksw_config ""
echo "\"recorders\": ${rates%, }}" >&3
echo "}" >&3
