# A guest that hangs is a finding, not a stall. The guest wedges every CPU
# (a real-time busy loop in the kernel, dd reading /dev/zero, with RT
# throttling off: nothing else runs again); at the timeout the runner dumps
# each vCPU (RIP resolved to a symbol, registers), gets the kernel's
# backtraces (sysrq l, then an NMI), keeps the guest's output from its first
# line, and leaves no vng, virtme-run or QEMU behind: piped through cat, the
# pipeline returns.
. tests/lib/common.sh
limit=35
scale=${KSW_VM_TIMEOUT_SCALE:-1}
[ "${KSW_KERNEL_VARIANT:-base}" != debug ] || scale=${KSW_VM_TIMEOUT_SCALE:-4}
guest='echo ksw-hang-start
echo -1 >/proc/sys/kernel/sched_rt_runtime_us
for c in $(seq 0 $(($(nproc) - 1))); do
	taskset -c "$c" chrt -f 99 dd if=/dev/zero of=/dev/null bs=64M 2>/dev/null &
done
echo "ksw-hang: wedging $(nproc) CPUs"
wait'

start=$SECONDS
set +e
# The outer timeout only keeps a broken runner from stalling the suite.
out=$(timeout -k 5 $((limit * scale + 90)) bash -c '"$1" --timeout "$2" -- sh -c "$3" 2>&1 | cat
exit "${PIPESTATUS[0]}"' _ "$VM" "$limit" "$guest")
status=$?
set -e
took=$((SECONDS - start))
note "runner | cat returned after ${took}s with status $status"
expect_eq "$status" 125 "runner exit status"
expect_match "$out" "FAILED: timeout after $((limit * scale))s" "the failure is the timeout"

# The guest's output from its very first line, before the report.
expect_eq "$(head -n 1 <<<"$out")" ksw-hang-start "first line of the output"
expect_match "$out" 'ksw-hang: wedging 2 CPUs' "the guest's last line"

# One summary line and one register dump per vCPU, RIP resolved.
sym='[A-Za-z_][A-Za-z0-9_.]*\+0x[0-9a-f]+/0x[0-9a-f]+'
cpu_lines=$(grep -E "^cpu[0-9]+: RIP [0-9a-f]{16} $sym, RSP" <<<"$out" || true)
note "$cpu_lines"
expect_eq "$(grep -c . <<<"$cpu_lines")" 2 "vCPUs with RIP resolved to a symbol"
expect_eq "$(grep -cE '^RIP=[0-9a-f]{16} RFL=' <<<"$out")" 2 "register dumps (info registers)"
expect_eq "$(grep -cE '^DR6=[0-9a-f]+ DR7=' <<<"$out")" 2 "debug registers in the dumps"
expect_eq "$(grep -c '^dumping local APIC state for CPU' <<<"$out")" 2 "local APIC dumps"
# Where they were: the wedge's read loop, in the dump or the kernel's traces.
expect_match "$out" 'read_zero\+0x' "the busy loop located (read_zero)"

# The kernel's own view, after the timeout: sysrq l over the serial
# console, then the NMI (unknown_nmi_panic).
expect_match "$out" 'NMI backtrace for cpu [0-9]' "sysrq l backtraces"
expect_match "$out" 'Kernel panic - not syncing: NMI' "NMI panic with a backtrace"

# The whole console log is kept, from the kernel's first line.
log=$(sed -nE 's/.*whole log \([0-9]+ lines\): (.*) ----$/\1/p' <<<"$out")
[ -f "$log" ] || die "no console log kept (printed path: '$log')"
expect_match "$(cat "$log")" '\[ +0\.000000\] Linux version 6\.' "the console log from the kernel's first line"
expect_match "$(cat "$log")" 'sysrq: Show backtrace of all active CPUs' "the console log after the timeout"

# Nothing left of the guest: no process mentions its run directory (vng,
# virtme-run and QEMU all carry it on their command lines).
run=$(dirname "$log")
left=$(pgrep -af -- "$run" || true)
[ -z "$left" ] || die "guest processes left behind: $left"
note "no process left for $run; qemu-system processes on the host: $(pgrep -c qemu-system || true)"
rm -rf "$run"
[ "$took" -le $((limit * scale + 45)) ] || die "took ${took}s: the hang was not cut at the timeout"
