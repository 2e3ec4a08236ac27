#!/usr/bin/env bash
# The clients against a hostile server (by hand; not in CI): for each scenario of
# scripts/hostile-proxy.py, in front of a real sessd (the first reply of its first 4
# connections faulted), runs sessctl (a set, then a get through a
# second connection) and connect-sessd in an Express app (client/node/bench/hostile-express.js),
# and prints each one's exit status, time and message. Under a minute a scenario at most.
#
#   scripts/hostile-clients.sh [BUILD_DIR build] [SCENARIO...]
#
# Use a sanitizer build (build-asan) to have sessctl's memory checked too. A sessctl must end
# within its --timeout (1000 ms) and a margin with status 2 and a message naming the fault (or
# succeed where the fault did not touch its reply); hostile-express.js checks its own promises.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
scenarios=${*:-cut len4g lenmax innerlen wrongtype extra missing status foreign duplicate swap early silent trickle endless biggest garbage}
work=$(mktemp -d /tmp/hostile-clients-XXXXXX)
trap 'kill $daemon ${proxy:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
"$root/$build/daemon/sessd" --listen "unix:$work/d.sock" --log-level warn 2>"$work/sessd.log" &
daemon=$!
for _ in $(seq 50); do [ -S "$work/d.sock" ] && break; sleep 0.1; done
sessctl="$root/$build/client/sessctl"
failed=0
# A fresh proxy for each client, so that each meets the faulted connections.
start_proxy() {
	if [ -n "${proxy:-}" ]; then kill $proxy 2>/dev/null; wait $proxy 2>/dev/null; fi
	rm -f "$work/p.sock"
	python3 "$root/scripts/hostile-proxy.py" "$work/p.sock" "$work/d.sock" "$1" 1 4 &
	proxy=$!
	for _ in $(seq 50); do [ -S "$work/p.sock" ] && break; sleep 0.1; done
}
for s in $scenarios; do
	start_proxy "$s"
	id="hostile-$s-0123456789abcdef0123456789"
	"$sessctl" --connect "unix:$work/d.sock" set "$id" "data of $s" >/dev/null
	for cmd in "get $id" "set $id changed" "count"; do
		start=$(date +%s%N)
		timeout 30 "$sessctl" --connect "unix:$work/p.sock" --timeout 1000 $cmd >"$work/out" 2>&1
		rc=$?
		out=$(tr -d '\0' <"$work/out")
		ms=$(( ($(date +%s%N) - start) / 1000000 ))
		printf '%-10s sessctl %-5s rc=%d %5d ms  %s\n' "$s" "${cmd%% *}" "$rc" "$ms" "$(printf '%s' "$out" | head -c 150 | tr -c '[:print:]' '?')"
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] || [ "$ms" -gt 4000 ]; then failed=1; fi
	done
	start_proxy "$s"
	start=$(date +%s%N)
	out=$(cd "$root/client/node" && timeout 120 node bench/hostile-express.js "unix:$work/p.sock" 20 2>&1)
	rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	printf '%-10s express rc=%d %5d ms  %s\n' "$s" "$rc" "$ms" "$(printf '%s' "$out" | head -c 400 | tr '\n' ' ')"
	[ "$rc" -eq 0 ] || failed=1
	kill $proxy 2>/dev/null
	wait $proxy 2>/dev/null
	proxy=
done
kill -0 $daemon || { echo "sessd died"; failed=1; }
exit $failed
