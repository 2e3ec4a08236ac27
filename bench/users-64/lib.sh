# Shared by the users-64 scripts: a sessd and the two apps (apps.js) in $W.
# Needs W (a work directory). BUILD: the build directory (build/ of the checkout).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SESSD=${SESSD:-$BUILD/daemon/sessd}
SESSCTL=${SESSCTL:-$BUILD/client/sessctl}
TCP_PORT=${TCP_PORT:-17164}
SESSD_EXTRA=${SESSD_EXTRA:-}
mkdir -p "$W"

log() { printf '%s %s\n' "$(date -u +%T.%N | cut -c1-12)" "$*" | tee -a "$W/events.log" >&2; }

# start_sessd [ARGS...]: sessd on $W/sessd.sock and loopback TCP, secret $W/auth; SESSD_PRE: a
# command prefix (env VAR=... of libfaketime, say).
start_sessd() {
	[ -s "$W/auth" ] || (umask 077; head -c 32 /dev/urandom | base64 >"$W/auth")
	rm -f "$W/ready"
	# shellcheck disable=SC2086
	${SESSD_PRE:-} "$SESSD" --listen "unix:$W/sessd.sock" --listen "tcp://127.0.0.1:$TCP_PORT" \
		--auth-file "$W/auth" --ready-file "$W/ready" $SESSD_EXTRA "$@" 2>>"$W/sessd.log" &
	echo $! >"$W/sessd.pid"
	for _ in $(seq 400); do [ -s "$W/ready" ] && return 0; sleep 0.05; done
	log "sessd not ready after 20 s"; return 1
}
stop_sessd() { local p; p=$(cat "$W/sessd.pid" 2>/dev/null) || return 0; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; rm -f "$W/sessd.pid"; }

# start_app NAME APP PORT URL [ENV=VAL...]: a cluster of 4 workers of apps.js.
start_app() {
	local name=$1 app=$2 port=$3 url=$4; shift 4
	env APP="$app" PORT="$port" SESSD_URL="$url" SESSD_AUTH_FILE="$W/auth" "$@" \
		node "$HERE/apps.js" >>"$W/$name.log" 2>&1 &
	echo $! >"$W/$name.pid"
	for _ in $(seq 200); do
		curl -s -o /dev/null "http://127.0.0.1:$port/state" && return 0; sleep 0.1
	done
	log "$name not listening after 20 s"; return 1
}
stop_app() { local p; p=$(cat "$W/$1.pid" 2>/dev/null) || return 0; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; rm -f "$W/$1.pid"; }
sessctl() { "$SESSCTL" --connect "unix:$W/sessd.sock" --auth-file "$W/auth" "$@"; }
