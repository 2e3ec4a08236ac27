#!/usr/bin/env python3
"""Read meson test logs (meson-logs/*.json) and say what a test's OK does not: which cases
were skipped, and whether the parts of a split suite ran every case of it exactly once.

meson counts a TAP test whose cases were skipped as passed (criterion's cr_skip_test, node:test's
skip), so a case that stopped running on a machine (a missing capability, a lost privilege) went
unseen. Every skipped case is printed here with its reason; with --fail-on-skip each one that is
not in tests/expected-skips fails the check.

A long criterion suite can be registered as parts (tests/integration/meson.build): NAME-1ofN ..
NAME-NofN, the same binary with --filter globs that leave no case out (a glob and its
complement). Criterion reports the cases a filter left out as skipped ("test was skipped"), so
each part's TAP lists every case of the binary: the parts must list the same cases, and each must
have run in exactly one part. Parts found in the logs are checked; with --whole, a split suite
with a part missing from all of them fails too (.ci/run, whose streams run the parts).

Usage: check_cases.py [--fail-on-skip] [--whole] LOG.json...   Exit 0 when all is well, 1 if not.
"""
import json
import os
import re
import sys

# A TAP result line: "ok - suite::case  (0.12s)", "ok 3 - name # SKIP why" (node:test indents
# subtests). TAP's directive is case-insensitive.
RESULT = re.compile(r"^\s*(not ok|ok)\b(?:\s+\d+)?\s*-?\s*(.*?)(?:\s+#\s*(SKIP|TODO)\b\s*(.*))?$",
                    re.IGNORECASE)
# What criterion says of a case that did not run because a --filter (or .disabled) left it out.
FILTERED = "test was skipped"
PART = re.compile(r"^(.*)-(\d+)of(\d+)$")


def expected_skips(path):
    """The reasons (regular expressions, one a line) a case may be skipped for on any machine
    this runs on: they depend on the build's word size, not on what the machine allows."""
    patterns = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(re.compile(line))
    return patterns


def cases_of(output):
    """[(case, skipped, reason)] of a criterion TAP output, or None if it is not one."""
    if "# Criterion v" not in output:
        return None
    found = []
    for line in output.splitlines():
        m = RESULT.match(line)
        if not m or "::" not in m.group(2):
            continue
        name = m.group(2).split()[0]
        skipped = (m.group(3) or "").upper() == "SKIP"
        found.append((name, skipped, (m.group(4) or "").strip()))
    return found


def node_skips(output):
    """[(case, reason)] skipped in a node:test TAP output."""
    skips = []
    for line in output.splitlines():
        m = RESULT.match(line)
        if m and (m.group(3) or "").upper() == "SKIP":
            skips.append((m.group(2).strip(), (m.group(4) or "").strip()))
    return skips


def main(argv):
    fail_on_skip = "--fail-on-skip" in argv
    whole = "--whole" in argv
    logs = [a for a in argv if not a.startswith("--")]
    allowed = expected_skips(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "expected-skips"))
    problems = 0
    skips = []  # (test, case, reason, expected)
    parts = {}  # (log's build directory, NAME) -> {k: (n, cases)}
    for log in logs:
        if not os.path.exists(log):
            continue
        build = os.path.dirname(os.path.dirname(os.path.abspath(log)))
        for line in open(log):
            test = json.loads(line)
            name = test["name"].split(" / ", 1)[-1]
            output = test.get("stdout") or ""
            cases = cases_of(output)
            part = PART.match(name)
            if cases is None:
                for case, reason in node_skips(output):
                    skips.append((test["name"], case, reason))
                continue
            if part and cases:
                parts.setdefault((build, part.group(1)), {})[int(part.group(2))] = (
                    int(part.group(3)), cases)
            for case, skipped, reason in cases:
                if skipped and not (part and reason == FILTERED):
                    skips.append((test["name"], case, reason))

    for (build, name), found in sorted(parts.items()):
        n = next(iter(found.values()))[0]
        where = f"{name} in {os.path.basename(build)}"
        missing = [k for k in range(1, n + 1) if k not in found]
        if missing:
            if whole:
                problems += 1
                print(f"== SPLIT: {where}: part(s) {missing} of {n} are in none of the logs")
            continue
        listed = [sorted(c for c, _, _ in found[k][1]) for k in range(1, n + 1)]
        if any(lst != listed[0] for lst in listed):
            problems += 1
            print(f"== SPLIT: {where}: its parts list different cases (not one binary?)")
            continue
        ran = {}
        for k in range(1, n + 1):
            for case, skipped, reason in found[k][1]:
                if not (skipped and reason == FILTERED):
                    ran.setdefault(case, []).append(k)
        wrong = [case for case in listed[0] if len(ran.get(case, [])) != 1]
        for case in wrong:
            print(f"== SPLIT: {where}: {case} ran in parts {ran.get(case, [])} "
                  f"(each case must run in exactly one of the {n})")
        problems += len(wrong)
        if not wrong:
            print(f"{where}: its {len(listed[0])} cases ran once each across its {n} parts "
                  f"({', '.join(str(sum(1 for p in ran.values() if p == [k])) for k in range(1, n + 1))})")

    unexpected = [s for s in skips if not any(p.search(s[2]) for p in allowed)]
    expected = len(skips) - len(unexpected)
    if skips:
        print(f"== {len(skips)} test case(s) SKIPPED: they did not run, and meson counted "
              f"their tests as passed")
        for test, case, reason in skips:
            mark = "expected here" if (test, case, reason) not in unexpected else "SKIPPED"
            print(f"  {mark}: {test}: {case}: {reason}")
        if expected:
            print(f"  ({expected} expected: their reason is in tests/expected-skips)")
    if unexpected and fail_on_skip:
        problems += len(unexpected)
        print(f"== {len(unexpected)} skipped case(s) this machine should run: failed "
              f"(--fail-on-skip; see tests/expected-skips)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
