#!/usr/bin/env bash
# make memcheck: runs .ci/memcheck.lua (a few hundred requests of every kind against the test
# nginx, every error kind, key loads, signatures, bad keys, codecs) under valgrind. Fails on
# any invalid access or definitely/indirectly lost block. Needs a core built with -O0 -g in
# build/memcheck (the Makefile's memcheck recipe does that).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CORE_DIR=${MEMCHECK_CORE_DIR:-$ROOT/build/memcheck}
[ -f "$CORE_DIR/assesskit/core.so" ] || { echo "memcheck: no $CORE_DIR/assesskit/core.so" >&2; exit 1; }
log=$(mktemp /tmp/assesskit-valgrind.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;;" \
LUA_CPATH="$CORE_DIR/?.so;;" \
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --num-callers=30 \
  --track-fds=no --log-file="$log" \
  lua5.4 .ci/memcheck.lua || status=$?
cat "$log"
# A short account of what stays reachable at exit (libcurl/OpenSSL globals).
LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;;" \
LUA_CPATH="$CORE_DIR/?.so;;" MEMCHECK_ROUNDS=1 \
valgrind --leak-check=summary lua5.4 .ci/memcheck.lua 2>&1 | grep -E "definitely|indirectly|possibly|still reachable" | sed 's/^==[0-9]*== */summary (1 round): /' || true
if [ "$status" -ne 0 ]; then
  echo "memcheck: FAILED (valgrind reported errors or leaks above)" >&2
  exit "$status"
fi
echo "memcheck: clean (no invalid access, no definite or indirect leak)"
