#!/usr/bin/env bash
# The bench scripts' own usage: bench/memory, a wrapper around bench/compare, describes
# itself (its options, not compare's) and refuses compare's options that would do nothing in
# a memory-only run. Usage: bench_usage.sh BENCH_DIR
set -euo pipefail
bench=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

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
for args in "--bogus" "sideways build" "records"; do
	status=0
	# shellcheck disable=SC2086
	"$bench/turn-flood-compare" $args >"$dir/out" 2>"$dir/err" || status=$?
	[ "$status" = 2 ] || fail "bench/turn-flood-compare $args exited $status, want 2"
	[ ! -s "$dir/out" ] || fail "bench/turn-flood-compare $args wrote to stdout: $(cat "$dir/out")"
done
echo "ok: bench/turn-flood-compare describes itself and refuses bad arguments"
