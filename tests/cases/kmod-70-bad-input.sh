# Every class of bad input fails the write with its errno and one log line,
# and leaves the active watch as it was: it still catches afterwards.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
good=$(watch_local ksw_test_direct_victim)
ksw_config "$good"
before=$(grep -v '^#' /proc/kstackwatch)
fo=$(field "$good" fo)

reject() { # reject ERRNO WHAT CONFIG LOG_REGEX
	local lines e msg
	lines=$(dmesg | wc -l)
	e=$(ksw_write "$3")
	expect "$e" "$1" "$2: errno"
	msg=$(dmesg | tail -n +$((lines + 1)) | grep 'kstackwatch:' || true)
	expect "$(wc -l <<<"$msg")" 1 "$2: one log line"
	expect_match "$msg" "config rejected: .*$4" "$2: log says why"
	expect "$(grep -v '^#' /proc/kstackwatch)" "$before" "$2: active watch untouched"
}
EINVAL=22 ERANGE=34 ENOENT=2 EEXIST=17 EILSEQ=84 ENODATA=61 E2BIG=7
reject $EINVAL "unknown key" "fn=ksw_test_victim fo=$fo bogus=1" "unknown key at 'bogus'"
reject $EINVAL "repeated key" "fn=ksw_test_victim fo=$fo func_offset=1" "func_offset given twice"
reject $EINVAL "malformed number" "fn=ksw_test_victim fo=0x12g" "func_offset is not a decimal or 0x number"
reject $ERANGE "out-of-range value" "fn=ksw_test_victim fo=$fo mw=5" "max_watch out of range"
reject $EINVAL "bad watch_len" "fn=ksw_test_victim fo=$fo so=8 wl=3" "watch_len must be 0 \(canary\), 1, 2, 4 or 8"
reject $EINVAL "missing func_name" "fo=$fo so=8 wl=8" "func_name \(fn\) is required"
reject $EINVAL "not key=value" "fn=ksw_test_victim fo" "expected key=value"
reject $EEXIST "same function twice" "$good
$good" "already watched"
reject $E2BIG "too many specs" "$(for i in 1 2 3 4 5 6 7 8 9; do echo "fn=f$i"; done)" "more than 8 watch specs"
reject $ENOENT "unknown function" "fn=no_such_function_ksw fo=0" "function not found"
reject $ERANGE "offset outside the function" "fn=ksw_test_direct_victim fo=0x100000" "outside the function"
reject $EILSEQ "offset inside an instruction" "fn=ksw_test_direct_victim fo=$((fo + 1))" "instruction boundary"
# The error of register_fprobe_ips (Documentation/kstackwatch.md): EINVAL.
reject $EINVAL "function without an exit hook (Rust)" "fn=ksw_test_corrupt fo=0 so=0 wl=8" "no ftrace entry .*\(error 22\)"
reject $ENODATA "canary watch on a function without a canary" "fn=ksw_test_pid fo=0" "no stack-protector canary"
call=$(disasm ksw_test_direct_victim | grep -- '-> ksw_test_mark$' | cut -f1)
reject $EINVAL "offset on a call" "fn=ksw_test_direct_victim fo=$call" "is a call, jump or return: probe the instruction after it"
reject $EINVAL "canary watch armed before the canary is stored" "fn=ksw_test_direct_victim fo=0x5" "func_offset 0x5 runs before the canary is stored"
reject $EINVAL "no func_offset on a function without a frame" "fn=ksw_test_tail_target" "sets up no stack frame"
blacklisted=$(ksw_write "fn=do_int3 fo=0 so=0 wl=8")
[ "$blacklisted" != 0 ] || fail "a kprobe-blacklisted function was accepted"
ok "kprobe-blacklisted function rejected (errno $blacklisted)"

trace_start
out=$(scenario direct)
expect "$(count ' ksw_hit: ' "$(events)")" 1 "the original watch still catches"
