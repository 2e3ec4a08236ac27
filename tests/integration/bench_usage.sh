#!/usr/bin/env bash
# The bench scripts' own usage: bench/memory, a wrapper around bench/compare, describes
# itself (its options, not compare's) and refuses compare's options that would do nothing in
# a memory-only run. Usage: bench_usage.sh BENCH_DIR
set -euo pipefail
bench=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# refuses SCRIPT ARGS...: each of ARGS (words split) makes bench/SCRIPT exit 2 without output.
refuses() {
	local script=$1 args status
	shift
	for args in "$@"; do
		status=0
		# shellcheck disable=SC2086
		"$bench/$script" $args >"$dir/out" 2>"$dir/err" || status=$?
		[ "$status" = 2 ] || fail "bench/$script $args exited $status, want 2"
		[ ! -s "$dir/out" ] || fail "bench/$script $args wrote to stdout: $(cat "$dir/out")"
	done
}

status=0
"$bench/memory" --help >"$dir/out" 2>"$dir/err" || status=$?
[ "$status" = 0 ] || fail "bench/memory --help exited $status"
[ ! -s "$dir/err" ] || fail "bench/memory --help wrote to stderr: $(cat "$dir/err")"
head -n1 "$dir/out" | grep -q '^usage: bench/memory ' || fail "not bench/memory's usage: $(cat "$dir/out")"
grep -q -- '--sessions N' "$dir/out" || fail "--sessions is not described: $(cat "$dir/out")"
! grep -q -- '--runs\|bench/compare \[' "$dir/out" || fail "compare's options shown: $(cat "$dir/out")"
"$bench/memory" -h | cmp -s - "$dir/out" || fail "-h and --help differ"
echo "ok: bench/memory --help is its own"

for args in "--runs 3" "--quick" "--bogus"; do
	status=0
	# shellcheck disable=SC2086
	"$bench/memory" $args >"$dir/out" 2>"$dir/err" || status=$?
	[ "$status" = 2 ] || fail "bench/memory $args exited $status, want 2"
	[ ! -s "$dir/out" ] || fail "bench/memory $args wrote to stdout: $(cat "$dir/out")"
	grep -q "^memory: ${args%% *}" "$dir/err" || fail "bench/memory $args: $(cat "$dir/err")"
	grep -q '^usage: bench/memory ' "$dir/err" || fail "bench/memory $args: $(cat "$dir/err")"
done
echo "ok: compare's options without effect here, and unknown ones, are refused"

status=0
"$bench/compare" --help >"$dir/out" || status=$?
[ "$status" = 0 ] || fail "bench/compare --help exited $status"
head -n1 "$dir/out" | grep -q '^usage: bench/compare ' || fail "compare's usage changed: $(cat "$dir/out")"
echo "ok: bench/compare --help is unchanged"

status=0
"$bench/turn-flood-compare" --help >"$dir/out" 2>"$dir/err" || status=$?
[ "$status" = 0 ] || fail "bench/turn-flood-compare --help exited $status"
[ ! -s "$dir/err" ] || fail "bench/turn-flood-compare --help wrote to stderr: $(cat "$dir/err")"
grep -q '^  bench/turn-flood-compare \[--runs N\]' "$dir/out" || fail "its usage: $(cat "$dir/out")"
refuses turn-flood-compare "--bogus" "sideways build" "records"
echo "ok: bench/turn-flood-compare describes itself and refuses bad arguments"

# bench/ceiling-profile describes --pin and --symbols, and refuses a --symbols that is not a
# count before it starts anything (its table would otherwise fail after minutes of runs).
status=0
"$bench/ceiling-profile" --help >"$dir/out" 2>"$dir/err" || status=$?
[ "$status" = 0 ] || fail "bench/ceiling-profile --help exited $status"
grep -q -- '--pin runs sessd on the last CPU' "$dir/out" || fail "--pin is not described: $(cat "$dir/out")"
grep -q -- '--symbols N adds' "$dir/out" || fail "--symbols is not described: $(cat "$dir/out")"
grep -q '^Needs perf' "$dir/out" || fail "what it needs is not shown: $(cat "$dir/out")"
refuses ceiling-profile "--symbols many" "--symbols -3" "--bogus"
echo "ok: bench/ceiling-profile describes --pin and --symbols and refuses a bad count"
