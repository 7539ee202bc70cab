#!/bin/bash
# Run one compat snippet with `docker` aliased to the implementation under test.
#
#   harness.sh SNIPPET_FILE
#
# Environment: DOCKER_CMD (the command `docker` stands for, e.g. "katadocker" or the podman
# wrapper), BUSYBOX (an image reference the snippets run). Exit 0 when the snippet passed; on a
# failed check the snippet's `fail` message is on stderr and the exit status is 1.
shopt -s expand_aliases
# shellcheck disable=SC2139  # expanded now on purpose
alias docker="$DOCKER_CMD"

fail() { echo "COMPAT FAIL: $*" >&2; exit 1; }
# expect_eq ACTUAL EXPECTED [what]
expect_eq() { [ "$1" == "$2" ] || fail "${3:-value}: expected [$2], got [$1]"; }
# expect_re REGEX ACTUAL [what]  (bash ERE, whole value)
expect_re() { [[ "$2" =~ ^$1$ ]] || fail "${3:-value}: [$2] does not match /$1/"; }
# expect_in NEEDLE HAYSTACK [what]  (case-insensitive substring, as docker's texts drift in case)
expect_in() { [[ "${2,,}" == *"${1,,}"* ]] || fail "${3:-text}: [$1] not in [$2]"; }

# shellcheck disable=SC1090
source "$1"
