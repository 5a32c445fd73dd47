# The bench guest has at least two CPUs online.
. tests/lib/common.sh
out=$("$VM" -- nproc)
note "nproc in the guest: $out"
[ "$out" -ge 2 ] || die "expected >= 2 CPUs, got $out"
