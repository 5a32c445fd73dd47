#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Record ftrace function_graph together with the kstackwatch trace events,
# on the mono clock (the clock `perf record -k mono` uses), while a command
# runs.
#
#   trace-scripts/record-graph.sh [-m trace-cmd|tracefs] [-o OUT] [-t]
#                                 [-n] -l FILTER [-l FILTER]... -- CMD...
#
#   -m trace-cmd  (default) trace-cmd record -C mono -p function_graph
#                 -l FILTER... -e kstackwatch; OUT is a trace.dat
#                 (default ksw-graph.dat), read it with `trace-cmd report`.
#   -m tracefs    no trace-cmd: a tracefs instance of its own
#                 (instances/ksw-graph-PID) with trace_clock=mono,
#                 funcgraph-abstime, funcgraph-proc and the kstackwatch
#                 events enabled in the instance; OUT is the instance's
#                 `trace` text (default ksw-graph.txt). The instance is
#                 removed on exit, whatever happens; the top-level tracer is
#                 never touched.
#   -l FILTER     set_ftrace_filter entry (function, glob or ':mod:NAME'),
#                 repeatable; at least one: a graph of every kernel function
#                 is rarely what you want and very slow.
#   -t            also funcgraph-tail (`} /* func */` on closing lines).
#   -n            print what would be done, do nothing.
#
# Needs root, tracefs, a kernel with function_graph, and the kstackwatch
# module loaded (its events must exist). On 6.12 tracefs instances have
# set_ftrace_filter but no set_graph_function, so the graph is limited with
# set_ftrace_filter (trace-cmd -l), not set_graph_function (trace-cmd -g).
#
# Example (the test module's silent scenario):
#   trace-scripts/record-graph.sh -l ':mod:kstackwatch_test' -- \
#       sh -c 'echo silent > /proc/kstackwatch_test'
#   TRACEEVENT_PLUGIN_DIR=~/ksw-plugin trace-cmd report -i ksw-graph.dat
set -euo pipefail

mode=trace-cmd
out=
tail=0
dry=0
filters=()

usage() {
	sed -n '3,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;$d'
	exit "${1:-0}"
}

die() {
	echo "record-graph: $*" >&2
	exit 1
}

while getopts "m:o:l:tnh" opt; do
	case "$opt" in
	m) mode=$OPTARG ;;
	o) out=$OPTARG ;;
	l) filters+=("$OPTARG") ;;
	t) tail=1 ;;
	n) dry=1 ;;
	h) usage 0 ;;
	*) usage 2 >&2 ;;
	esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || die "no command to run (… -- CMD...)"
[ ${#filters[@]} -gt 0 ] || die "no -l FILTER: say which functions to graph (e.g. -l ':mod:kstackwatch_test')"

# Runs (or with -n prints) a command.
run() {
	if [ "$dry" = 1 ]; then
		printf '%q ' "$@"
		echo
	else
		"$@"
	fi
}

# Writes VALUE to a tracefs FILE (or with -n prints it). With APPEND=1 it
# appends (set_ftrace_filter: one entry per write). Failing writes say
# which file refused what.
put() {
	local value=$1 file=$2
	if [ "$dry" = 1 ]; then
		echo "echo '$value' ${APPEND:+>}> $file"
		return
	fi
	if [ -n "${APPEND:-}" ]; then
		echo "$value" >>"$file" 2>/dev/null || die "cannot add '$value' to $file"
	else
		echo "$value" >"$file" 2>/dev/null || die "cannot write '$value' to $file"
	fi
}

tracefs_root() {
	local t
	for t in "${TRACEFS:-}" /sys/kernel/tracing /sys/kernel/debug/tracing; do
		if [ -n "$t" ] && [ -e "$t/trace_clock" ]; then
			echo "$t"
			return
		fi
	done
	[ "$dry" = 1 ] && { echo /sys/kernel/tracing; return; }
	die "no tracefs (mount -t tracefs nodev /sys/kernel/tracing)"
}

preflight() {
	local t=$1
	[ "$dry" = 1 ] && return
	[ -d "$t/events/kstackwatch" ] || die "no kstackwatch events in $t/events: load the kstackwatch module first"
	grep -qw function_graph "$t/available_tracers" ||
		die "this kernel has no function_graph tracer (available: $(cat "$t/available_tracers"))"
	grep -qw mono "$t/trace_clock" || die "no mono trace clock"
}

record_trace_cmd() {
	local t args=()
	t=$(tracefs_root)
	preflight "$t"
	[ "$dry" = 1 ] || command -v trace-cmd >/dev/null ||
		die "trace-cmd is not installed (apt install trace-cmd), or use -m tracefs"
	for f in "${filters[@]}"; do
		args+=(-l "$f")
	done
	if [ "$tail" = 1 ]; then
		args+=(-O funcgraph-tail)
	fi
	run trace-cmd record -q -C mono -p function_graph "${args[@]}" \
		-e kstackwatch -o "${out:-ksw-graph.dat}" -- "$@"
}

# The instance this run created (global: the EXIT trap runs after
# record_tracefs has returned).
INSTANCE=

record_tracefs() {
	local t inst opt
	t=$(tracefs_root)
	preflight "$t"
	inst=$t/instances/ksw-graph-$$
	if [ "$dry" != 1 ] && [ -e "$inst" ]; then
		die "$inst already exists"
	fi
	run mkdir "$inst"
	if [ "$dry" != 1 ]; then
		# From here on the instance is ours: remove it on any exit.
		INSTANCE=$inst
		trap 'cleanup_instance "$INSTANCE"' EXIT
		trap 'exit 130' INT TERM
	fi
	put mono "$inst/trace_clock"
	for f in "${filters[@]}"; do
		APPEND=1 put "$f" "$inst/set_ftrace_filter"
	done
	put function_graph "$inst/current_tracer"
	for opt in funcgraph-abstime funcgraph-proc funcgraph-cpu; do
		put 1 "$inst/options/$opt"
	done
	[ "$tail" = 1 ] && put 1 "$inst/options/funcgraph-tail"
	put 1 "$inst/events/kstackwatch/enable"
	put 1 "$inst/tracing_on"
	local status=0
	run "$@" || status=$?
	put 0 "$inst/tracing_on"
	if [ "$dry" = 1 ]; then
		echo "cat $inst/trace > ${out:-ksw-graph.txt}"
	else
		cat "$inst/trace" >"${out:-ksw-graph.txt}"
	fi
	[ "$dry" = 1 ] && echo "rmdir $inst"
	return $status
}

# Undo everything the instance holds, then remove it (tracefs refuses to
# remove an instance whose tracer or events are still busy).
cleanup_instance() {
	local inst=$1
	[ -d "$inst" ] || return 0
	echo 0 >"$inst/tracing_on" 2>/dev/null || true
	echo 0 >"$inst/events/enable" 2>/dev/null || true
	echo nop >"$inst/current_tracer" 2>/dev/null || true
	: >"$inst/set_ftrace_filter" 2>/dev/null || true
	rmdir "$inst" 2>/dev/null || echo "record-graph: could not remove $inst" >&2
}

case "$mode" in
trace-cmd) record_trace_cmd "$@" ;;
tracefs) record_tracefs "$@" ;;
*) die "unknown mode '$mode' (trace-cmd or tracefs)" ;;
esac
