#!/usr/bin/python3
"""Runs the client written from PROTOCOL.md against the test vectors and a real sessd.

usage: spec_check.py [--sessd PATH] [--offline | --ci]
Prints one line per failed check, then "N passed, N failed"; exits 1 if any failed.
--ci: the part that needs only Python's standard library (no PyNaCl: nothing sealed) and
runs in a second or two: the vectors, decoded and re-encoded, then each request vector sent
to a real sessd and its reply (status, and the closing reply's request id by the rule in
"Errors that close") checked; and the plain HELLO's checks.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from vectors_check import check_vectors, check_seal_vectors, check_spec_examples  # noqa: E402


class Tally:
    def __init__(self, verbose=False):
        self.passed = self.failed = 0
        self.verbose = verbose
        self.failures = []

    def ok(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            if self.verbose:
                print("ok   " + name)
        else:
            self.failed += 1
            self.failures.append(name)
            print("FAIL %s %s" % (name, detail), flush=True)
        return cond

    def eq(self, name, got, want):
        return self.ok(name, got == want, "got %r, want %r" % (got, want))


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(HERE))
    ap.add_argument("--sessd", default=os.path.join(root, "build", "daemon", "sessd"))
    ap.add_argument("--offline", action="store_true", help="the vectors only")
    ap.add_argument("--ci", action="store_true", help="no PyNaCl, a second or two")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    t = Tally(a.v)
    start = time.monotonic()
    check_vectors(os.path.join(root, "protocol", "vectors.json"), t)
    if not a.ci:
        check_seal_vectors(os.path.join(root, "protocol", "seal-vectors.json"), t)
    check_spec_examples(t)
    if a.ci:
        import live
        live.run_ci(a.sessd, os.path.join(root, "protocol", "vectors.json"), t)
    elif not a.offline:
        import live
        live.run(a.sessd, os.path.join(root, "protocol", "vectors.json"), t)
    print("spec-65: %.1f s" % (time.monotonic() - start))
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
