# Helpers for tests/cases/*.sh (sourced; run from the repository root).
# shellcheck shell=bash
set -euo pipefail

KSW_ROOT=$(pwd)
VM=$KSW_ROOT/tests/vm/run
# KSW_KMOD: where the modules are, relative to the root: kmod (built for
# the base kernel by make modules) unless a run on another kernel gives
# modules built for it, e.g. KSW_KERNEL_VARIANT=debug
# KSW_KMOD=target/stress/kmod-debug (tests/stress/run builds those).
KSW_KMOD=${KSW_KMOD:-kmod}
KSW_KO=$KSW_ROOT/$KSW_KMOD/kstackwatch/kstackwatch.ko
KSW_TEST_KO=$KSW_ROOT/$KSW_KMOD/kstackwatch_test/kstackwatch_test.ko
BENCH_MODULES=$KSW_ROOT/tests/vm/modules

note() { printf '[case] %s\n' "$*"; }
die() { printf '[case] FAIL: %s\n' "$*" >&2; exit 1; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() { [ "$1" = "$2" ] || die "$3: expected '$2', got '$1'"; }
# expect_match TEXT REGEX WHAT
expect_match() { grep -Eq -- "$2" <<<"$1" || die "$3: no match for /$2/ in: $1"; }
expect_no_match() { ! grep -Eq -- "$2" <<<"$1" || die "$3: unexpected /$2/ in: $(grep -E -- "$2" <<<"$1" | head -3)"; }

# kv TEXT KEY: the value of KEY=value in TEXT (first occurrence).
kv() { grep -oE "(^|[[:space:]])$2=[^[:space:]]*" <<<"$1" | head -1 | sed 's/^[[:space:]]*[^=]*=//'; }

# For a case that runs inside the VM: on the host, re-run the case there
# with `guest` as its argument, kstackwatch and the test module loaded;
# in the guest, return and let the case go on. Options before the script
# go to tests/vm/run (--cpus N; the default is the runner's, 2).
#   run_in_guest [--cpus N] "$0" "$@"
run_in_guest() {
	local vm_args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--cpus) vm_args+=(--cpus "$2"); shift 2 ;;
		*) break ;;
		esac
	done
	[ "${2:-}" = guest ] && return 0
	exec "$VM" "${vm_args[@]}" --module "$KSW_KO" --module "$KSW_TEST_KO" -- env KSW_KMOD="$KSW_KMOD" bash "$1" guest
}
