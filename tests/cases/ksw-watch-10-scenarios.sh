# Each test-module scenario that corrupts (or not) a watched local, once,
# with the watch `ksw watch --apply` resolves from the module's DWARF by
# function and variable name: `buf[8]` from the line after the marker call,
# or the canary. No offset is written anywhere; every write is caught as
# with the oracle's offsets (kmod-*), and each arm watches sp + the
# sp_offset ksw watch printed.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
. tests/lib/ksw-watch.sh
FOREIGN=0xf0e1d2c3

# run_watched WHAT FUNC SCENARIO [ksw watch args]: applies the watch, runs
# the scenario, sets cfg, out, arm (the first), hits, disarm (the last).
run_watched() {
	local what=$1 func=$2 sc=$3 ev
	shift 3
	ksw_config ""
	cfg=$(kwatch "$func" "$@")
	expect_match "$cfg" "^fn=$func " "$what: ksw watch's config line ($cfg)"
	expect_match "$(grep '^func_name=' /proc/kstackwatch)" "^func_name=$func " "$what: applied"
	trace_start
	out=$(scenario "$sc")
	ev=$(events)
	arm=$(grep -m1 ' ksw_arm: ' <<<"$ev" || true)
	[ -n "$arm" ] || fail "$what: never armed"
	hits=$(grep ' ksw_hit: ' <<<"$ev" || true)
	disarm=$(grep ' ksw_disarm: ' <<<"$ev" | tail -1)
	if [ -n "$(field "$cfg" so)" ]; then
		expect "$(arm_so "$arm")" "$(field "$cfg" so)" "$what: armed at sp + the sp_offset ksw watch found"
		expect_match "$arm" "probe=$func\+$(field "$cfg" fo)/" "$what: armed at the probe point ksw watch found"
	fi
}
one_hit() { # one_hit WHAT WRITER CONTEXT NEW
	expect "$(count ' ksw_hit: ' "$hits")" 1 "$1: exactly one hit"
	expect_match "$hits" " writer=$2\+0x[0-9a-f]+/" "$1: writer"
	expect "$(field "$hits" context)" "$3" "$1: writer context"
	expect "$(field "$hits" new)" "$4" "$1: value written"
	expect "$(field "$hits" old)" "$(field "$arm" value)" "$1: old value is the value at arm"
	expect "$(field "$disarm" corrupted)" changed "$1: corrupted verdict"
}

run_watched direct ksw_test_direct_victim direct 'buf[8]' --at "$(after_marker ksw_test_direct_victim)"
one_hit direct ksw_test_corrupt task/victim 0xd1ec7

run_watched silent ksw_test_victim silent 'buf[8]' --at "$(after_marker ksw_test_victim)"
one_hit silent ksw_test_corrupt task 0xabcdabcd
expect "$(field "$out" overlap)" 1 "silent: victim reuses the buggy frame's slot"
expect "$(field "$hits" victim)" "ksw-victim/$(field "$out" victim_pids)" "silent: victim"

run_watched clean ksw_test_victim "clean 3" 'buf[8]' --at "$(after_marker ksw_test_victim)"
ev=$(events)
expect "$(count ' ksw_arm: ' "$ev")" 3 "clean: three frames armed"
expect "$(count ' ksw_hit: ' "$ev")" 0 "clean: no hit"
expect "$(grep ' ksw_disarm: ' <<<"$ev" | grep -vc 'corrupted=intact')" 0 "clean: every frame intact"

run_watched recursive ksw_test_recurse "recursive 3 6" 'buf[8]' --at "$(after_marker ksw_test_recurse)" --depth 3
expect "$(field "$arm" depth)" 3 "recursive: armed depth"
one_hit recursive ksw_test_corrupt task/victim 0xdeec

run_watched hardirq ksw_test_irq_victim hardirq 'buf[8]' --at "$(after_marker ksw_test_irq_victim)"
one_hit hardirq ksw_test_corrupt hardirq/victim $FOREIGN

run_watched softirq ksw_test_irq_victim softirq 'buf[8]' --at "$(after_marker ksw_test_irq_victim)"
one_hit softirq ksw_test_corrupt softirq/victim $FOREIGN

run_watched deep ksw_test_deep_victim "deep 48" 'buf[8]' --at "$(after_marker ksw_test_deep_victim)"
one_hit deep ksw_test_corrupt task/victim $FOREIGN

run_watched alias ksw_test_alias_victim alias 'buf[8]' --at "$(after_marker ksw_test_alias_victim)"
expect "$hits" "" "alias: no hit (the write goes through another mapping)"
expect "$(field "$disarm" exit_value)" $FOREIGN "alias: value when the frame died"
expect "$(field "$disarm" corrupted)" changed "alias: silently corrupted"

# The canary: ksw watch --canary leaves the probe point to the module (the
# canary store); the overflow is caught writing it and putting it back.
run_watched canary ksw_test_canary_victim canary --canary
expect "$cfg" "fn=ksw_test_canary_victim ac=1" "canary: config line"
expect "$(count ' ksw_hit: ' "$hits")" 2 "canary: overflow and repair caught"
expect_match "$hits" 'writer=ksw_test_overflow\+' "canary: writer"
expect "$(field "$disarm" corrupted)" intact "canary: restored"

# The default probe point (right after the prologue) watches the same
# slot: the victim's own initialization of buf[8] is reported too.
run_watched default ksw_test_direct_victim direct 'buf[8]'
expect_match "$hits" 'writer=ksw_test_corrupt\+' "default: the corrupting write is among the hits"
expect "$(grep ' ksw_hit: ' <<<"$hits" | tail -1 | grep -o ' new=[^ ]*')" " new=0xd1ec7" "default: the last write is the corruption"
expect_releases_clean "ksw watch configs"
ksw_config ""
