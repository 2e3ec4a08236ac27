#!/usr/bin/env bash
# The binaries that ship (sessd, sessctl, libsessd) are built with the hardening the top
# meson.build asks for: a stack canary in functions that hold arrays (-fstack-protector-strong:
# they import __stack_chk_fail), checked copies and formats where _FORTIFY_SOURCE is on (they
# import __*_chk functions), full RELRO (BIND_NOW and a GNU_RELRO segment) and, for the
# programs, position independence. Debian's gcc turns none of the first two on by itself.
#   hardening.sh fortify|no-fortify FILE...
set -euo pipefail
expect_fortify=$1
shift
fail=0
for file in "$@"; do
	name=$(basename "$file")
	syms=$(readelf --dyn-syms -W "$file")
	dynamic=$(readelf -d -W "$file")
	headers=$(readelf -l -W "$file")
	if ! grep -q ' __stack_chk_fail' <<<"$syms"; then
		echo "$name: no stack protector (imports no __stack_chk_fail)"
		fail=1
	fi
	if [ "$expect_fortify" = fortify ] && ! grep -Eq ' __[a-z]+_chk(@|$)' <<<"$syms"; then
		echo "$name: not built with _FORTIFY_SOURCE (imports no __*_chk function)"
		fail=1
	fi
	if ! grep -Eq 'BIND_NOW|Flags:.* NOW' <<<"$dynamic" || ! grep -q GNU_RELRO <<<"$headers"; then
		echo "$name: no full RELRO (BIND_NOW and GNU_RELRO)"
		fail=1
	fi
	case "$name" in
	*.so*) ;;
	*)
		if ! readelf -h "$file" | grep -q 'Type:.*DYN'; then
			echo "$name: not position-independent"
			fail=1
		fi
		;;
	esac
done
[ "$fail" = 0 ] && echo "hardened: $*"
exit "$fail"
