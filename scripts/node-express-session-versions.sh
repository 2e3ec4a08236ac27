#!/usr/bin/env bash
# connect-sessd's Node suite against other express-session versions (by hand; not in CI: each
# version is a whole suite, several minutes). The committed lock file pins the newest 1.x;
# apps still run older ones (the peer range is >=1.17.0). For each VERSION this copies
# client/node (with the node_modules of `npm ci`) and examples/express-demo (npm ci there) to
# a scratch tree beside links to the rest of the repository, installs express-session@VERSION
# in both with --no-save (the branch's package.json and package-lock.json stay as they are),
# and runs `npm test` (Express 5) and `npm run test:express4` there against BUILD_DIR's sessd.
# It prints each run's closing counts and the failing tests' names; the whole output is kept
# in the scratch tree (test.log, test:express4.log). The model check on that version:
# KEEP=1, then node bench/model-check.js (or bench/app-crash.js) in the kept client/node.
#
#   scripts/node-express-session-versions.sh [BUILD_DIR build] [VERSION...]
#
# VERSION defaults to 1.17.3 1.18.2 (the oldest supported, the newest 1.18.x; 1.19.0 is the
# lock file's). Set KEEP=1 to keep the scratch trees (their path is printed). Exit status 1
# when a run failed.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
versions=${*:-1.17.3 1.18.2}
[ -x "$root/$build/daemon/sessd" ] || { echo "no sessd at $root/$build/daemon/sessd: build it first" >&2; exit 2; }
[ -d "$root/client/node/node_modules" ] || { echo "run npm ci in client/node first" >&2; exit 2; }
failed=0
for v in $versions; do
	work=$(mktemp -d "/tmp/express-session-$v-XXXXXX")
	for e in "$root"/*; do case "$(basename "$e")" in client | examples) ;; *) ln -s "$e" "$work/" ;; esac; done
	mkdir -p "$work/client" "$work/examples"
	cp -a "$root/client/node" "$work/client/node"
	# The demo shop (tests load and fork it) has its own dependencies: the same version there.
	cp -a "$root/examples/express-demo" "$work/examples/express-demo"
	rm -rf "$work/examples/express-demo/node_modules"
	(cd "$work/client/node" && npm install --no-save --no-audit --no-fund "express-session@$v" >"$work/install.log" 2>&1 &&
		cd "$work/examples/express-demo" && npm ci --no-audit --no-fund >>"$work/install.log" 2>&1 &&
		npm install --no-save --no-audit --no-fund "express-session@$v" >>"$work/install.log" 2>&1) ||
		{ echo "express-session@$v: install failed, see $work/install.log"; failed=1; continue; }
	got=$(cd "$work/client/node" && node -p "require('express-session/package.json').version")
	for run in test test:express4; do
		out="$work/$run.log"
		(cd "$work/client/node" && SESSD_BIN="$root/$build/daemon/sessd" SESSD_SOURCE_ROOT="$work" npm run "$run" --silent >"$out" 2>&1)
		rc=$?
		echo "express-session@$got npm run $run: exit $rc; $(grep -E '^# (pass|fail|skipped|todo) ' "$out" | tr '\n' ' ')"
		grep -E '^not ok ' "$out" | sed 's/^/  /'
		[ $rc = 0 ] || failed=1
	done
	if [ -n "${KEEP:-}" ]; then echo "  kept: $work"; else rm -rf "$work"; fi
done
exit $failed
