#!/usr/bin/env bash
# libsessd as an application outside the source tree sees it: install the build into a
# temporary DESTDIR, then build a program with the installed header, pkg-config file and
# shared library alone, and run it against the installed sessd. Also: the library exports
# exactly the functions of client/libsessd.map (none of the codec it links in), under the
# soname libsessd.so.0, and sessd.h stands alone in C99 with -pedantic and in C++.
# Usage: install_embed.sh BUILD_DIR MAP CC [CC_ARGS...]
set -euo pipefail
build=$1 map=$2
shift 2
for tool in pkg-config nm readelf; do
	command -v "$tool" >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
dir=$(mktemp -d)
daemon_pid=
cleanup() {
	[ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
	[ -z "$daemon_pid" ] || wait "$daemon_pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

dest=$dir/dest
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dir/install.log" 2>&1 ||
	{ cat "$dir/install.log"; fail "meson install failed"; }
pc=$(find "$dest" -name libsessd.pc | head -n 1)
[ -n "$pc" ] || fail "no libsessd.pc installed"
lib=$(find "$dest" -name 'libsessd.so.*.*' -type f | head -n 1)
[ -n "$lib" ] || fail "no libsessd.so installed"
sessd=$(find "$dest" -name sessd -type f -perm -u+x | head -n 1)
[ -n "$sessd" ] || fail "no sessd installed"
echo "ok: installed $(basename "$lib"), libsessd.pc, sessd.h and sessd"

# What the dynamic symbol table offers is the map's functions, no more and no fewer.
sed -n 's/^[[:space:]]*\(sessd_[a-z_]*\);$/\1/p' "$map" | sort >"$dir/map.txt"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sed 's/@.*//' |
	sort >"$dir/exported.txt"
diff -u "$dir/map.txt" "$dir/exported.txt" >"$dir/symbols.diff" ||
	{ cat "$dir/symbols.diff"; fail "the library exports other symbols than libsessd.map"; }
echo "ok: exports exactly the $(wc -l <"$dir/map.txt") functions of libsessd.map"
readelf -d "$lib" | grep -q 'SONAME.*\[libsessd\.so\.0\]' || fail "the soname is not libsessd.so.0"
echo "ok: soname libsessd.so.0"

# sessctl finds the library where it was installed: a prefix outside the linker's path left it
# unable to start. A /usr build (a distribution's) has no RUNPATH.
prefix=$(sed -n 's/^prefix=//p' "$pc")
want_rpath=$(sed -n 's/^libdir=//p' "$pc" | sed "s|\${prefix}|$prefix|")
sessctl=$(find "$dest" -name sessctl -type f -perm -u+x | head -n 1)
[ -n "$sessctl" ] || fail "no sessctl installed"
rpath=$(readelf -d "$sessctl" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
[ "$prefix" != /usr ] || want_rpath=
# A clang sanitizer build links ASan's shared runtime from clang's own directory (meson.build):
# its programs all carry that directory too, and a program linked with the static runtime
# against its library stops ("linked against incompatible ASan runtimes").
app_link=()
if [ -n "${SESSD_SANITIZER_RPATH:-}" ]; then
	want_rpath=${want_rpath:+$want_rpath:}$SESSD_SANITIZER_RPATH
	app_link=(-shared-libasan "-Wl,-rpath,$SESSD_SANITIZER_RPATH")
fi
[ "$rpath" = "$want_rpath" ] ||
	fail "the installed sessctl's RUNPATH is '$rpath', not '$want_rpath' (prefix $prefix)"
echo "ok: the installed sessctl's RUNPATH is '$rpath'"

# Only what is installed: the header and library found through pkg-config.
export PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_LIBDIR=$(dirname "$pc")
cflags=$(pkg-config --cflags libsessd)
libs=$(pkg-config --libs libsessd)
libdir=$(dirname "$lib")
cat >"$dir/app.c" <<'APP'
#include <sessd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct sessd_options o = {.timeout_ms = 5000, .client_name = "installed"};
	struct sessd_client *c;
	char why[SESSD_ERRMSG_SIZE], id[SESSD_ID_LEN + 1];
	void *data;
	size_t len;
	int ok;

	if (argc != 2 || sessd_id_new(id) != SESSD_OK)
		return 2;
	if (sessd_connect_errbuf(argv[1], &o, &c, why, sizeof(why)) != SESSD_OK) {
		fprintf(stderr, "%s\n", why);
		return 1;
	}
	ok = sessd_set(c, id, SESSD_ID_LEN, "{}", 2, 60000) == SESSD_OK &&
	     sessd_get(c, id, SESSD_ID_LEN, &data, &len) == SESSD_OK;
	if (ok) {
		ok = len == 2 && memcmp(data, "{}", 2) == 0;
		free(data);
	}
	if (!ok)
		fprintf(stderr, "%s\n", sessd_errmsg(c));
	sessd_close(c);
	return ok ? 0 : 1;
}
APP
# shellcheck disable=SC2086 # the flags are words
"$@" -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags "$dir/app.c" -o "$dir/app" $libs \
	"${app_link[@]}" ||
	fail "a program does not build with the installed header and library"
readelf -d "$dir/app" | grep -q 'NEEDED.*\[libsessd\.so\.0\]' ||
	fail "the program does not need libsessd.so.0"
echo "ok: a program builds with pkg-config --cflags --libs libsessd alone"
# pkg-config gives the library's own version: the one its file is named by and sessd.h's
# SESSD_LIB_VERSION, so that a build can ask for a call added since (sessd_result_lost came in
# 0.2). It said the project's 0.1.0 for libsessd.so.0.2.0.
modversion=$(pkg-config --modversion libsessd)
[ "$(basename "$lib")" = "libsessd.so.$modversion" ] ||
	fail "pkg-config --modversion libsessd says $modversion; the library is $(basename "$lib")"
pkg-config --atleast-version=0.2 libsessd ||
	fail "pkg-config --atleast-version=0.2 libsessd fails: it says $modversion"
cat >"$dir/version.c" <<'APP'
#include <sessd.h>

#include <stdio.h>

#if SESSD_LIB_VERSION_MAJOR != 0 || SESSD_LIB_VERSION_MINOR < 2
#error "sessd_result_lost needs libsessd 0.2"
#endif

int main(void)
{
	printf("%s %d.%d.%d %d\n", SESSD_LIB_VERSION, SESSD_LIB_VERSION_MAJOR,
	       SESSD_LIB_VERSION_MINOR, SESSD_LIB_VERSION_PATCH, sessd_result_lost(NULL));
	return 0;
}
APP
# shellcheck disable=SC2086 # the flags are words
"$@" -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags "$dir/version.c" -o "$dir/version" \
	$libs "${app_link[@]}" || fail "a program that checks SESSD_LIB_VERSION_MINOR does not build"
said=$(LD_LIBRARY_PATH=$libdir "$dir/version") || fail "the version program failed"
[ "$said" = "$modversion $modversion 0" ] ||
	fail "sessd.h says '$said' where pkg-config says $modversion"
echo "ok: pkg-config --modversion libsessd, the library's file and sessd.h say $modversion"
printf '#include <sessd.h>\n' >"$dir/alone.c"
# shellcheck disable=SC2086
"$@" -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags -fsyntax-only "$dir/alone.c" ||
	fail "sessd.h does not stand alone in C99"
if command -v c++ >/dev/null; then
	# shellcheck disable=SC2086
	c++ -std=c++11 -x c++ -Wall -Wextra -Wpedantic -Werror $cflags -fsyntax-only "$dir/alone.c" ||
		fail "sessd.h does not compile as C++"
	echo "ok: sessd.h stands alone in C99 and C++11"
fi

"$sessd" --listen "unix:$dir/s.sock" --ready-file "$dir/ready" --log-level warn \
	2>"$dir/sessd.log" &
daemon_pid=$!
for _ in $(seq 100); do
	[ -s "$dir/ready" ] && break
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/sessd.log"; fail "sessd did not start"; }
	sleep 0.1
done
[ -s "$dir/ready" ] || fail "sessd did not get ready"
LD_LIBRARY_PATH=$libdir "$dir/app" "unix:$dir/s.sock" || fail "the program's calls failed"
echo "ok: the program talks to the installed sessd through the installed library"
