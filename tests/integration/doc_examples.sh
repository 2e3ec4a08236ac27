#!/usr/bin/env bash
# What a newcomer copies from the docs, run as written against the real daemon: README.md's
# sessctl session (each command's exit status and the output shown under it), the
# `find | xargs destroy` pipeline that README.md and sessctl(1) give for logging a user out,
# and the shipped unit's command line and the README's drop-in for it (every option they use
# exists and they start a daemon that serves).
# Usage: doc_examples.sh SOURCE_ROOT SESSD SESSCTL
set -euo pipefail
src=$1 sessd=$2 sessctl=$3
dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}

# The docs call them sessd and sessctl: put this build's first in PATH under those names.
mkdir "$dir/bin"
ln -s "$(realpath "$sessd")" "$dir/bin/sessd"
ln -s "$(realpath "$sessctl")" "$dir/bin/sessctl"
export PATH="$dir/bin:$PATH"
unset SESSD_AUTH_FILE RUNTIME_DIRECTORY

# start NAME ARGS...: runs sessd ARGS with a ready file; returns once it listens.
start() {
	local name=$1
	shift
	rm -f "$dir/$name.ready"
	sessd "$@" --ready-file "$dir/$name.ready" 2>"$dir/$name.log" &
	pids+=($!)
	local i
	for ((i = 0; i < 1500; i++)); do
		[ -s "$dir/$name.ready" ] && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$dir/$name.log"; fail "$name: sessd exited before it was ready"; }
		sleep 0.01
	done
	cat "$dir/$name.log"
	fail "$name: sessd not ready after 15 s"
}

start main --listen "unix:$dir/s.sock"
export SESSD_URL="unix:$dir/s.sock"

# README.md, "## sessctl": its "    $ " lines are one shell session, and the indented lines
# under a command are its output.
awk '/^## sessctl/ { on = 1; next } /^## / { on = 0 } on && /^    / { print substr($0, 5) }' \
	"$src/README.md" >"$dir/session.txt"
[ "$(grep -c '^\$ ' "$dir/session.txt")" -ge 5 ] || fail "README.md's sessctl session not found"
cmd=
check_last() {
	[ -n "$cmd" ] || return 0
	local rc=0
	eval "$cmd" >"$dir/out" 2>"$dir/err" || rc=$?
	[ "$rc" = 0 ] || { cat "$dir/err"; fail "README.md: \`$cmd\` exited $rc"; }
	printf '%s' "$expected" | diff -u - "$dir/out" ||
		fail "README.md: \`$cmd\` printed otherwise than shown"
	echo "ok: README.md: $cmd"
}
while IFS= read -r line; do
	if [[ $line == '$ '* ]]; then
		check_last
		cmd=${line#\$ } expected=
	else
		expected+="$line"$'\n'
	fi
done <"$dir/session.txt"
check_last

# The logout pipeline, where the docs give it: with nothing to find (a user already logged
# out, a misspelt name) it must do nothing and succeed, and with sessions to find, one of
# them an id that starts with a dash, it destroys them and nothing else.
grep -ho "sessctl --namespace shop find '\"user\":\"alice\"' | xargs[^\`]*" \
	"$src/README.md" "$src/docs/sessctl.1.scd" >"$dir/pipelines.txt" || true
[ "$(wc -l <"$dir/pipelines.txt")" -ge 2 ] || fail "the find | xargs pipeline not found in README.md and sessctl(1)"
while IFS= read -r pipeline; do
	sessctl --namespace shop set bob-session '{"user":"bob"}' --ttl 600
	# Another user whose session holds the name elsewhere (a product "alice" in her cart)
	# stays logged in: the pipeline matches the user's field, not the name anywhere.
	sessctl --namespace shop set carol-session '{"user":"carol","cart":["alice"]}' --ttl 600
	rc=0
	bash -c "$pipeline" >"$dir/out" 2>"$dir/err" || rc=$?
	[ "$rc" = 0 ] || { cat "$dir/err"; fail "\`$pipeline\` with no match exited $rc"; }
	sessctl --namespace shop set -Xalice1 '{"user":"alice"}' --ttl 600
	sessctl --namespace shop set alice2 '{"user":"alice"}' --ttl 600
	rc=0
	bash -c "$pipeline" >"$dir/out" 2>"$dir/err" || rc=$?
	[ "$rc" = 0 ] || { cat "$dir/err"; fail "\`$pipeline\` exited $rc"; }
	[ "$(sessctl --namespace shop list | cut -f1 | sort | tr '\n' ' ')" = "bob-session carol-session " ] ||
		fail "\`$pipeline\` left $(sessctl --namespace shop list | cut -f1 | tr '\n' ' ')"
	sessctl --namespace shop destroy bob-session
	sessctl --namespace shop destroy carol-session
	echo "ok: $pipeline"
done <"$dir/pipelines.txt"

# The unit's command line (systemd/sessd.service), with the directories systemd would give.
mkdir -m 0750 "$dir/run" && mkdir -m 0700 "$dir/state"
unit_cmd=$(sed -n 's|^ExecStart=/usr/sbin/sessd ||p' "$src/systemd/sessd.service")
[ -n "$unit_cmd" ] || fail "no ExecStart=/usr/sbin/sessd in systemd/sessd.service"
unit_cmd=${unit_cmd//'${RUNTIME_DIRECTORY}'/$dir/run}
unit_cmd=${unit_cmd//'${STATE_DIRECTORY}'/$dir/state}
read -ra unit_args <<<"$unit_cmd"
start unit "${unit_args[@]}"
[ "$(sessctl --connect "unix:$dir/run/sessd.sock" ping)" = pong ] || fail "the unit's sessd does not answer"
kill "${pids[-1]}"
wait "${pids[-1]}" || fail "the unit's sessd did not stop cleanly"
echo "ok: the unit's ExecStart: $unit_cmd"

# README.md's drop-in, on loopback rather than 10.0.0.5, with a secret made as it says.
dropin_cmd=$(sed -n 's|^ *ExecStart=/usr/local/sbin/sessd ||p' "$src/README.md")
[ -n "$dropin_cmd" ] || fail "no drop-in ExecStart=/usr/local/sbin/sessd in README.md"
(
	umask 077
	head -c 32 /dev/urandom | base64 >"$dir/auth"
)
dropin_cmd=${dropin_cmd//'${RUNTIME_DIRECTORY}'/$dir/run}
dropin_cmd=${dropin_cmd//'${STATE_DIRECTORY}'/$dir/state}
dropin_cmd=${dropin_cmd//tcp:\/\/10.0.0.5:7077/tcp://127.0.0.1:0}
dropin_cmd=${dropin_cmd//\/etc\/sessd\/auth/$dir/auth}
read -ra dropin_args <<<"$dropin_cmd"
start dropin "${dropin_args[@]}"
tcp=$(grep '^tcp://' "$dir/dropin.ready")
[ "$(sessctl --connect "$tcp" --auth-file "$dir/auth" ping)" = pong ] || fail "the drop-in's sessd does not answer"
kill "${pids[-1]}"
wait "${pids[-1]}" || fail "the drop-in's sessd did not stop cleanly"
echo "ok: the README's drop-in: $dropin_cmd"
