#!/usr/bin/env bash
# Puts scripts/mitm-proxy.py between the clients and a private sessd --auth-file on loopback
# TCP and runs each scenario against libsessd (sessctl) and connect-sessd, reading the store
# afterwards without the proxy (by hand; not in CI; about 2 minutes). Results and what they
# mean: tests/fuzz/README.md, "A man in the middle of sealed connections".
#   scripts/mitm-clients.sh [BUILD_DIR] [SCENARIO...]
# SCENARIO: a mitm-proxy.py scenario, a name ending in "-down" for one on the replies, or
# "hold-logout" (libsessd and connect-sessd: a held SET released after the user's logout).
# MITM_HOLD_S: how long hold-logout holds the record (default 4; mitm-48 also ran 130, past
# sessd's --tcp-keepalive). Needs client/node's npm ci for the connect-sessd side (skipped
# without it).
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$src/build}")
shift || true
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(flip-len flip-tag flip-body drop dup replay reflect
	cut flip-tag-down dup-down cut-down strip-kx auth-nil refuse-seal hello-nil small-frame
	server-id hold-logout)
sessctl=$build/client/sessctl
dir=$(mktemp -d /tmp/sessd-mitm-XXXXXX)
daemon_port=${MITM_DAEMON_PORT:-17171}
proxy_port=${MITM_PROXY_PORT:-17172}
hold_s=${MITM_HOLD_S:-4}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
(umask 077 && head -c 32 /dev/urandom | base64 >"$dir/app" && head -c 32 /dev/urandom | base64 >"$dir/admin")
"$build/daemon/sessd" --listen "tcp://127.0.0.1:$daemon_port" --auth-file "$dir/app" \
	--admin-auth-file "$dir/admin" >"$dir/sessd.log" 2>&1 &
pids+=($!)
direct() { "$sessctl" --connect "tcp://127.0.0.1:$daemon_port" --auth-file "$dir/app" "$@" 2>&1; }
via() { "$sessctl" --connect "tcp://127.0.0.1:$proxy_port" --auth-file "$dir/app" --timeout 2000 "$@" 2>&1; }
for _ in $(seq 50); do direct ping >/dev/null && break; sleep 0.1; done
node_ok=false
[ -d "$src/client/node/node_modules" ] && command -v node >/dev/null && node_ok=true

# proxy SCENARIO ARGS...: starts the proxy (its log in $dir/proxy.log) and waits for it.
proxy() {
	python3 "$src/scripts/mitm-proxy.py" "$proxy_port" "$daemon_port" "$@" 2>"$dir/proxy.log" &
	proxy_pid=$!
	for _ in $(seq 100); do grep -q "mitm on" "$dir/proxy.log" && return; sleep 0.1; done
	echo "the proxy did not start"; cat "$dir/proxy.log"; exit 1
}
stop_proxy() {
	kill "$proxy_pid" 2>/dev/null
	wait "$proxy_pid" 2>/dev/null
	if grep -q PLAIN "$dir/proxy.log"; then echo "  A CLIENT SENT ITS SECRET PLAIN"; fi
}

# first_line WHAT SESSCTL_ARGS...: sessctl through the proxy; its first line and exit status.
first_line() {
	local what=$1 out rc
	shift
	out=$(via "$@")
	rc=$?
	echo "  libsessd: $what: ${out%%$'\n'*} (exit $rc)"
}

# node_run MODE ID: connect-sessd through the proxy (scripts/mitm-node.js).
node_run() {
	$node_ok || { echo "  connect-sessd: skipped (no client/node/node_modules)"; return; }
	SESSD_MITM_AUTH="$dir/app" MITM_HOLD_S=$hold_s timeout $((40 + hold_s)) node "$src/scripts/mitm-node.js" "$proxy_port" \
		"$daemon_port" "$@" 2>&1 | sed 's/^/  connect-sessd: /'
}

for sc in "${scenarios[@]}"; do
	id=$("$sessctl" new-id)
	echo "== $sc"
	if [ "$sc" = hold-logout ]; then
		proxy hold --n 1 --delay "$hold_s"
		first_line login set "$id" '{"user":"alice"}'
		echo "  libsessd: retry $(via set "$id" '{"user":"alice"}'; echo "(exit $?)")"
		echo "  libsessd: logout $(via destroy "$id"; echo "(exit $?)"); store: $(direct get "$id")"
		sleep $((hold_s + 1))
		echo "  libsessd: store $((hold_s + 1)) s after the logout: $(direct get "$id")"
		stop_proxy
		proxy hold --n 1 --delay "$hold_s"
		node_run hold "$("$sessctl" new-id)"
		stop_proxy
		continue
	fi
	args=("$sc")
	case $sc in
	*-down) args=("${sc%-down}" --dir down) ;;
	# HELLO's: every connection, so that connect-sessd's reconnections meet it too.
	strip-kx | auth-nil | refuse-seal | hello-nil | small-frame | big-frame | server-id)
		args+=(--conn 0) ;;
	esac
	proxy "${args[@]}"
	first_line set set "$id" "v-$sc"
	sleep 0.3
	echo "  libsessd: store: $(direct get "$id")"
	stop_proxy
	proxy "${args[@]}"
	node_run plain "$("$sessctl" new-id)"
	stop_proxy
done
echo "== sessd"
kill -0 "${pids[0]}" && echo "  still up" || echo "  DOWN"
grep -c . "$dir/sessd.log" | sed 's/^/  log lines: /'
grep -i 'warn\|error' "$dir/sessd.log" | sed 's/^/  /' | head -10
