# The harness survives kernel text patching while the other CPU schedules:
# switching a tracepoint on and off patches its static-key sites, e.g. in
# __schedule. Multi-threaded TCG before QEMU 8.1 fails this within a few
# toggles ("Oops: int3"); tests/vm/run picks single-threaded TCG there.
. tests/lib/common.sh
out=$("$VM" -- bash -c '
T=/sys/kernel/tracing
for n in 1 2; do (while :; do sleep 0.001; done) & done
for i in $(seq 1 100); do
	echo 1 >$T/events/sched/sched_wakeup/enable
	echo 0 >$T/events/sched/sched_wakeup/enable
done
kill $(jobs -p)
echo "toggled 100 times"') || die "the guest did not survive: $out"
expect_match "$out" 'toggled 100 times' "100 tracepoint toggles with the other CPU scheduling"
