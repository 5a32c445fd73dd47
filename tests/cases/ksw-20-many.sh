# More victims than slots through ksw record/report: four frames caught,
# one writer, identical hits grouped, nothing lost.
. tests/lib/common.sh
run_in_guest "$0" "$@"
. tests/lib/guest.sh
KSW=target/release/ksw
ksw_config "$(watch_local ksw_test_victim)"
err=$($KSW record -g -o /tmp/many.data -- sh -c 'echo "silent 6" > /proc/kstackwatch_test' 2>&1 >/dev/null) || fail "ksw record: $err"
expect_match "$err" '12 events \(4 arm, 4 hit, 4 disarm\), 0 lost' "events recorded"
json=$($KSW report -i /tmp/many.data --format json) || fail "ksw report"
prog=$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)
assert r["summary"]["headline"] == "4 corruptions of 4 victims by 1 writer", r["summary"]
assert len(r["victims"]) == 4 and all(v["verdict"] == "hit" for v in r["victims"])
sites = r["writers"][0]["sites"]
assert len(sites) == 1 and sites[0]["count"] == 4, sites
assert all(h["agreement"] == "agree" for v in r["victims"] for h in v["hits"])
PY
)
echo "$json" >/tmp/report.json
python3 -c "$prog" </tmp/report.json || fail "JSON report"
ok "4 corruptions of 4 victims by 1 writer, grouped at one site"
