#!/usr/bin/env bash
# sessd-bench --versus against a real daemon: both sides run and are reported over their own
# slices, the ratio is the one of the figures printed, and a --versus with store work is
# refused. Usage: bench_versus.sh SESSD SESSD_BENCH
set -euo pipefail
sessd=$1 bench=$2
dir=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
"$sessd" --listen "unix:$dir/s.sock" --ready-file "$dir/ready" --log-level warn 2>"$dir/log" &
pid=$!
for _ in $(seq 200); do [ -s "$dir/ready" ] && break; sleep 0.05; done
[ -s "$dir/ready" ] || { echo "sessd did not start:"; cat "$dir/log"; exit 1; }

"$bench" --target "unix:$dir/s.sock" --server-pid "$pid" --connections 4 --keys 100 \
	--duration 1.5 --warmup 0.1 --slice 0.05 --value-size 200 --versus echo=100 \
	--versus-value-size 100 --json >"$dir/out.json"
python3 - "$dir/out.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
v = j["versus"]
def check(ok, what):
    if not ok:
        print("FAIL:", what, json.dumps(j))
        sys.exit(1)
check(j["ops"] > 0 and v["ops"] > 0, "both sides ran")
check(j["slices"] >= 3 and v["slices"] >= 3, "each side had several slices")
check(abs(j["slices"] - v["slices"]) <= 1, "the sides alternated")
check(j["errors"] == 0 and v["errors"] == 0, "no errors")
# Each side only ran its own operations: the echo moves 100 bytes each way in a frame, the
# mix sends 200-byte SETs and gets 200-byte GETs back.
check(set(j["per_op"]) <= {"get", "touch", "set", "destroy", "flash_push", "flash_pop"},
      "the mix's operations are the mix's")
check(200 < v["bytes_sent_per_op"] + v["bytes_received_per_op"] < 260, "echo bytes per op")
# Every moment of the timed run went to one side or the other. The run itself lasts at least
# its 1.5 s, and longer on a loaded machine (a timer fires late): no bound above.
check(abs(j["duration_s"] + v["duration_s"] - j["timed_s"]) < 0.0025,
      "the slices cover the timed run")
check(j["timed_s"] > 1.49, "the timed run lasted its --duration")
ratio = j["ops_per_sec"] / v["ops_per_sec"]
check(abs(j["versus_ops_ratio"] - ratio) < 0.01 * ratio + 0.001, "ops ratio is the figures'")
cpu = j["server_cpu_us_per_op"] / v["server_cpu_us_per_op"]
check(abs(j["versus_server_cpu_ratio"] - cpu) < 0.01 * cpu + 0.002, "cpu ratio is the figures'")
print("ok: mix %d ops/s, echo %d ops/s" % (j["ops_per_sec"], v["ops_per_sec"]))
PY

status=0
"$bench" --target "unix:$dir/s.sock" --versus get=100 --duration 0.1 2>"$dir/err" || status=$?
[ "$status" = 2 ] || { echo "FAIL: --versus get=100 exited $status, want 2"; exit 1; }
grep -q "ping and echo only" "$dir/err" || { echo "FAIL: no reason given:"; cat "$dir/err"; exit 1; }
echo "ok: a --versus with store work is refused"
