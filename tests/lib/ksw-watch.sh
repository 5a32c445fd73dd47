# Helpers for tests/cases/ksw-watch-*.sh (sourced in the guest after
# guest.sh): watches named by function and variable, resolved from DWARF
# by `ksw watch`; no offset is written anywhere.
# shellcheck shell=bash
KSW=${KSW:-$PWD/target/release/ksw}
[ -x "$KSW" ] || fail "no $KSW: run make tools"
VICTIMS_C=kmod/kstackwatch_test/ksw_test_victims.c
# The running kernel's image: the build in the project's cache whose build
# id is the running kernel's (/sys/kernel/notes), whichever variant booted.
running_vmlinux() {
	python3 - "${KSW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kstackwatch}" <<'PY'
import glob, struct, subprocess, sys
def notes_id(data):
    at = 0
    while at + 12 <= len(data):
        n, d, t = struct.unpack_from("<III", data, at)
        desc = at + 12 + (n + 3) // 4 * 4
        if t == 3 and data[at + 12:at + 12 + n].startswith(b"GNU"):
            return data[desc:desc + d].hex()
        at = desc + (d + 3) // 4 * 4
running = notes_id(open("/sys/kernel/notes", "rb").read())
for v in sorted(glob.glob(sys.argv[1] + "/kernel/*/vmlinux")):
    out = subprocess.run(["readelf", "-n", v], capture_output=True, text=True).stdout
    if "Build ID: " + str(running) in out:
        print(v)
        break
PY
}
VMLINUX=${VMLINUX:-$(running_vmlinux)}
[ -n "$VMLINUX" ] || fail "no vmlinux in the cache has the running kernel's build id"

# after_marker FUNC: "ksw_test_victims.c:LINE", the line after FUNC's call
# of ksw_test_mark() (where the oracle trace-scripts/ksw-probe-point arms).
after_marker() {
	local l
	l=$(awk -v f="$1" '$0 ~ "^noinline .*[ *]" f "\\(" { inside = 1 } inside && /ksw_test_mark\(/ { print NR; exit }' "$VICTIMS_C")
	[ -n "$l" ] || fail "no ksw_test_mark call in $1"
	echo "ksw_test_victims.c:$((l + 1))"
}
# kwatch ARGS...: `ksw watch --apply --module TEST_KO ARGS`; prints the
# config line it applied (its explanation goes to the log).
kwatch() {
	local out
	out=$($KSW watch --apply --module "$TEST_KO" "$@" 2>/tmp/kwatch.err) ||
		fail "ksw watch $*: $(cat /tmp/kwatch.err)"
	sed 's/^/    /' /tmp/kwatch.err >&2
	echo "$out"
}
# arm_so ARM_EVENT: the watched address's offset from sp at arm, in hex.
arm_so() { printf '0x%x' $(( $(field "$1" addr) - $(field "$1" sp) )); }
