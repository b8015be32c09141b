#!/usr/bin/env bash
# make sanitize: the core's specs (spec/core_*), then the hostile matrix's runs through the core,
# against a core built with AddressSanitizer and UndefinedBehaviorSanitizer (build/sanitize, the
# Makefile's sanitize recipe builds it), run
# by a Lua 5.4 interpreter built with the same sanitizers (.ci/lua_host.c), so that the ASan
# runtime comes first without an LD_PRELOAD that the specs' children (sh, nginx, openssl)
# would inherit. LeakSanitizer runs at exit. Any report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=build/sanitize
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
[ -f "$DIR/assesskit/core.so" ] || { echo "sanitize: no $DIR/assesskit/core.so" >&2; exit 1; }
${SAN_CC:-clang} -std=c99 -Wall -Wextra -Werror -pedantic -O1 -g $SAN \
  -rdynamic $(pkg-config --cflags lua5.4) .ci/lua_host.c -o "$DIR/lua" $(pkg-config --libs lua5.4)

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$ROOT/.ci/lsan.supp:print_suppressions=0"
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;;"
export LUA_CPATH="$ROOT/$DIR/?.so;;"
# specs that start a Lua subprocess use these
export ASSESSKIT_SPEC_LUA="$ROOT/$DIR/lua"
export ASSESSKIT_SPEC_CPATH="$LUA_CPATH"
specs=$(ls spec/core_*_spec.lua | grep -v -e core_symbols_spec -e core_rockspec_spec)
# The interpreter must load this core, not build/lua5.4's: say which one it is.
"$DIR/lua" - <<'LUA'
local path = package.searchpath("assesskit.core", package.cpath)
assert(path:find("build/sanitize", 1, true), "sanitize: would load " .. path)
print("sanitize: " .. path)
LUA
status=0
"$DIR/lua" /usr/bin/busted --run=default --cpath="$ROOT/$DIR/?.so" $specs || status=$?
# the hostile-server matrix's runs through the core (the raw responses of spec/support/hostile)
[ "$status" -ne 0 ] || "$DIR/lua" /usr/bin/busted --run=default --cpath="$ROOT/$DIR/?.so" \
  --filter="core" spec/hostile_matrix_spec.lua || status=$?
if [ "$status" -ne 0 ]; then
  echo "sanitize: FAILED (a sanitizer report or a failing spec above)" >&2
  exit "$status"
fi
echo "sanitize: clean (AddressSanitizer, UndefinedBehaviorSanitizer, LeakSanitizer)"
