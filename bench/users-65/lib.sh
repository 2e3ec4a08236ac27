# Shared by the users-65 scripts: a sessd on TCP with a secret (and --data-dir with
# --key-file), app hosts (app.js on 127.0.0.2, .3, ...), in $W. Needs W.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SESSD=${SESSD:-$BUILD/daemon/sessd}
SESSCTL=${SESSCTL:-$BUILD/client/sessctl}
TCP_PORT=${TCP_PORT:-17165}
APP_PORT=${APP_PORT:-18651}
GRACE=${GRACE:-20}
mkdir -p "$W"
export SESSD_URL="tcp://127.0.0.1:$TCP_PORT"

log() { printf '%s %s\n' "$(date -u +%T.%N | cut -c1-12)" "$*" | tee -a "$W/events.log" >&2; }
newsecret() { (umask 077; head -c 32 /dev/urandom | base64 >"$1"); }

# start_sessd [ARGS...]: sessd on loopback TCP, secret $W/auth, data in $W/data under $W/key,
# debug log in $W/sessd.log.
start_sessd() {
	[ -s "$W/auth" ] || newsecret "$W/auth"
	[ -s "$W/key" ] || (umask 077; head -c 32 /dev/urandom >"$W/key")
	rm -f "$W/ready"
	"$SESSD" --listen "tcp://127.0.0.1:$TCP_PORT" --auth-file "$W/auth" --auth-grace "$GRACE" \
		--data-dir "$W/data" --key-file "$W/key" --log-level debug --ready-file "$W/ready" \
		"$@" 2>>"$W/sessd.log" &
	echo $! >"$W/sessd.pid"
	for _ in $(seq 400); do [ -s "$W/ready" ] && return 0; sleep 0.05; done
	log "sessd not ready after 20 s"; return 1
}
stop_sessd() { local p; p=$(cat "$W/sessd.pid" 2>/dev/null) || return 0; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; rm -f "$W/sessd.pid"; }

# start_app NAME HOST AUTHFILE [ENV=VAL...]: app.js on HOST:$APP_PORT, its sessd connections
# from HOST, the secret read from AUTHFILE at its start; log $W/NAME.log.
start_app() {
	local name=$1 host=$2 auth=$3; shift 3
	env NAME="$name" HOST="$host" PORT="$APP_PORT" SESSD_AUTH_FILE="$auth" "$@" \
		node --require "$HERE/localaddr.js" "$HERE/app.js" >>"$W/$name.log" 2>&1 &
	echo $! >"$W/$name.pid"
	for _ in $(seq 200); do
		curl -s -o /dev/null "http://$host:$APP_PORT/health" && return 0; sleep 0.1
	done
	log "$name not listening after 20 s"; return 1
}
stop_app() { local p; p=$(cat "$W/$1.pid" 2>/dev/null) || return 0; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; rm -f "$W/$1.pid"; }
sessctl() { "$SESSCTL" --connect "$SESSD_URL" --auth-file "$W/auth" "$@"; }
