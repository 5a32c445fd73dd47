#!/bin/bash
# Runs inside the guest (see tests/vm/run): $1 is the shared run directory
# holding `cmd` and `modules`; writes `status` and `dmesg` back to it.
run=$1

setup_fail() {
	echo "[ksw guest] $*" >&2
	echo "setup:$*" >"$run/status"
	dmesg >"$run/dmesg" 2>/dev/null
	exit 0
}

mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing ||
	setup_fail "cannot mount tracefs"
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug ||
	setup_fail "cannot mount debugfs"
# perf needs these to record kernel call chains and tracepoints as root.
echo -1 >/proc/sys/kernel/perf_event_paranoid
echo 0 >/proc/sys/kernel/kptr_restrict

loaded=()
while IFS= read -r module; do
	[ -n "$module" ] || continue
	insmod "$module" || setup_fail "insmod $module failed"
	loaded=("$(basename "$module" .ko)" "${loaded[@]}")
done <"$run/modules"

# Their symbols, for the host's report if the guest hangs (tests/vm/run).
if [ ${#loaded[@]} -gt 0 ]; then
	names=$(IFS='|'; echo "${loaded[*]//-/_}")
	grep -E "[[:space:]]\[($names)\]\$" /proc/kallsyms >"$run/kallsyms.modules" 2>/dev/null
fi

# All of CMD's output on stdout: the host keeps stderr for the console.
bash -c "$(cat "$run/cmd")" 2>&1
status=$?

for module in "${loaded[@]}"; do
	if grep -q "^$module " /proc/modules; then
		rmmod "$module" || { echo "[ksw guest] rmmod $module failed" >&2; status=126; }
	fi
done
dmesg >"$run/dmesg"
echo "$status" >"$run/status"
sync
