# Shared by the users-63 scripts: start sessd and four shop processes in $W.
# Needs: BUILD (a build directory), W (a work directory), DATA (the data directory).
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SESSD=${SESSD:-$BUILD/daemon/sessd}
SESSCTL=${SESSCTL:-$BUILD/client/sessctl}
TCP_PORT=${TCP_PORT:-17077}
SESSD_EXTRA=${SESSD_EXTRA:-}

log() { printf '%s %s\n' "$(date +%s.%N | cut -c1-14)" "$*" | tee -a "$W/events.log" >&2; }

start_sessd() {
	rm -f "$W/ready"
	# shellcheck disable=SC2086
	"$SESSD" --listen "unix:$W/sessd.sock" --listen "tcp://127.0.0.1:$TCP_PORT" \
		--auth-file "$W/auth" --data-dir "$DATA" --ready-file "$W/ready" $SESSD_EXTRA \
		2>>"$W/sessd.log" &
	echo $! >"$W/sessd.pid"
	for _ in $(seq 200); do [ -s "$W/ready" ] && return 0; sleep 0.05; done
	log "sessd not ready after 10 s"; return 1
}

# start_shop N: shops 1 and 2 over TCP (sealed), 3 and 4 over the Unix socket (plain secret).
start_shop() {
	local n=$1 url seal=yes
	if [ "$n" -le 2 ]; then url=tcp://127.0.0.1:$TCP_PORT; else url=unix:$W/sessd.sock; seal=no; fi
	PORT=$((18080 + n)) SESSD_URL=$url SESSD_AUTH_FILE=$W/auth SHOP_SEAL=$seal SHOP_NAME=shop$n \
		node "$HERE/shop.js" >>"$W/shop$n.log" 2>&1 &
	echo $! >"$W/shop$n.pid"
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((18080 + n))/healthz" >/dev/null && return 0; sleep 0.1; done
	log "shop$n not up"; return 1
}

start_all() {
	[ -f "$W/auth" ] || (umask 077; head -c 32 /dev/urandom | base64 >"$W/auth")
	start_sessd
	for n in 1 2 3 4; do start_shop "$n"; done
}

stop_all() {
	for n in 1 2 3 4; do [ -f "$W/shop$n.pid" ] && kill "$(cat "$W/shop$n.pid")" 2>/dev/null; done
	[ -f "$W/sessd.pid" ] && kill "$(cat "$W/sessd.pid")" 2>/dev/null
	wait 2>/dev/null
}
PORTS=18081,18082,18083,18084
