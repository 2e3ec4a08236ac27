#!/usr/bin/env bash
# sessd(8) and sessctl(1) list the options that --help lists, long and short, and sessctl(1)
# the commands: a man page that lacks one, or names one the program does not have, sends the
# operator looking for something else. Usage: man_options.sh DOCS_DIR SESSD SESSCTL
set -euo pipefail
docs=$1 sessd=$2 sessctl=$3
status=0

# The options a --help text lists at the start of a line: "  --name ARG" or "  --name, -n".
help_options() {
	grep -oE '^  --[a-z-]+(, -[a-zA-Z])?' | sed 's/^  //; s/, /\n/'
}

# The options the man page's section $2 lists: "*--name* _ARG_" or "*--name*, *-n*".
man_options() {
	awk -v sec="$2" '$0 == "# " sec { on = 1; next } /^# / { on = 0 } on' "$1" |
		grep -oE '^\*--[a-z-]+\*(, \*-[a-zA-Z]\*)?' | tr -d '*' | sed 's/, /\n/'
}

# Compare the sorted lists $2 (from --help) and $3 (from the man page) for $1.
same() {
	local what=$1 help=$2 man=$3 diff
	if diff=$(diff <(sort -u <<<"$help") <(sort -u <<<"$man")); then
		echo "ok: $what"
	else
		echo "FAIL: $what differ (<: --help only, >: man page only)"
		echo "$diff"
		status=1
	fi
}

same "sessd --help and sessd(8)'s OPTIONS" "$("$sessd" --help | help_options)" \
	"$(man_options "$docs/sessd.8.scd" OPTIONS)"
same "sessctl --help and sessctl(1)'s OPTIONS" "$("$sessctl" --help | help_options)" \
	"$(man_options "$docs/sessctl.1.scd" OPTIONS)"
same "sessctl --help's commands and sessctl(1)'s COMMANDS" \
	"$("$sessctl" --help | sed -n '/^commands:/,/^$/p' | grep -oE '^  [a-z-]+' | sed 's/^  //')" \
	"$(awk '$0 == "# COMMANDS" { on = 1; next } /^# / { on = 0 } on' "$docs/sessctl.1.scd" |
		grep -oE '^\*[a-z-]+\*' | tr -d '*')"
exit $status
