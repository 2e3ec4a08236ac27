#!/usr/bin/env bash
# libsessd(3) must be enough to call the library: its SYNOPSIS declares every function the
# library exports (client/libsessd.map), each as sessd.h declares it, and every struct a
# caller fills or reads, field by field as sessd.h lays it out. Checked by compiling the
# man page's declarations after sessd.h: a prototype that differs is a conflicting
# redeclaration, and each struct, renamed, must match the real one's fields' offsets and
# sizes. Its EXAMPLE must compile too. Usage: man_synopsis.sh SCD CLIENT_DIR MAP CC [CC_ARGS...]
set -euo pipefail
scd=$1 client=$2 map=$3
shift 3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The code blocks of SYNOPSIS, but for the first (the #include and the cc line).
awk '/^# SYNOPSIS/ { in_syn = 1; next }
     /^# / { in_syn = 0 }
     in_syn && /^```/ { block++; next }
     in_syn && block % 2 == 1 && block > 1 { print }' "$scd" >"$dir/synopsis"
[ -s "$dir/synopsis" ] || fail "libsessd.3's SYNOPSIS declares nothing beyond #include"

missing=
while read -r fn; do
	grep -q "[ *]$fn(" "$dir/synopsis" || missing="$missing $fn"
done < <(sed -n 's/^[[:space:]]*\(sessd_[a-z_]*\);$/\1/p' "$map")
[ -z "$missing" ] || fail "libsessd.3's SYNOPSIS does not declare:$missing"
echo "ok: every exported function is declared in SYNOPSIS"

# Prototypes as they are; each struct renamed man_*, then compared with the real one.
{
	echo '#include <stddef.h>'
	echo '#include <sessd.h>'
	sed 's/^struct sessd_\([a-z_]*\) {/struct man_\1 {/' "$dir/synopsis"
	awk '/^struct sessd_[a-z_]* \{/ { name = $2; sub(/^sessd_/, "", name); next }
	     /^\};/ { if (name != "") printf "_Static_assert(sizeof(struct man_%s) == sizeof(struct sessd_%s), \"%s\");\n", name, name, name; name = ""; next }
	     name != "" && /;/ {
	             line = $0; sub(/;.*/, "", line); n = split(line, w, /[ *]+/); f = w[n]
	             printf "_Static_assert(offsetof(struct man_%s, %s) == offsetof(struct sessd_%s, %s) && sizeof(((struct man_%s *)0)->%s) == sizeof(((struct sessd_%s *)0)->%s), \"%s.%s\");\n", name, f, name, f, name, f, name, f, name, f
	     }' "$dir/synopsis"
} >"$dir/check.c"
"$@" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$client" "$dir/check.c" ||
	fail "libsessd.3's SYNOPSIS differs from sessd.h (the compiler says where)"
echo "ok: SYNOPSIS matches sessd.h"

# The EXAMPLE, as a function body (scdoc's \\ is one backslash).
{
	echo '#include <stdio.h>'
	echo '#include <stdlib.h>'
	echo '#include <sessd.h>'
	echo 'int example(void);'
	echo 'int example(void) {'
	awk '/^# EXAMPLE/ { in_ex = 1; next }
	     /^# / { in_ex = 0 }
	     in_ex && /^```/ { block++; next }
	     in_ex && block == 1 { print }' "$scd" | sed 's/\\\\/\\/g'
	echo 'return 0; }'
} >"$dir/example.c"
grep -q sessd_connect "$dir/example.c" || fail "libsessd.3 has no EXAMPLE"
"$@" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$client" "$dir/example.c" ||
	fail "libsessd.3's EXAMPLE does not compile"
echo "ok: EXAMPLE compiles"
