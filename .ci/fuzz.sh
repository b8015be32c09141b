#!/usr/bin/env bash
# make fuzz: bounded-time fuzzing. Every C entry point of assesskit.core that takes outside
# bytes, through one libFuzzer driver (fuzz/harness.c) built with the core's sources under
# AddressSanitizer + UndefinedBehaviorSanitizer, one target per fuzz/core/*.lua (seed corpora
# in fuzz/corpus/<target>/; key seeds are made here with openssl); then every fuzz/*.lua with
# luajit (Lua fuzz targets, e.g. the nginx transport's parser: `luajit fuzz/X.lua --seconds N`).
# Any crash, sanitizer report or broken invariant fails the run; libFuzzer keeps the input in
# build/fuzz/artifacts/.
#
#   .ci/fuzz.sh [SECONDS_PER_TARGET]     (default 10; make fuzz FUZZ_SECONDS=N)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
DIR=build/fuzz
CC=${FUZZ_CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
mkdir -p "$DIR/obj" "$DIR/artifacts" "$DIR/seeds/keys"

# the harness, and the core's sources instrumented for coverage
objs=()
for src in csrc/*.c; do
  obj="$DIR/obj/$(basename "$src" .c).o"
  $CC -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -O1 -g $SAN \
    -fsanitize=fuzzer-no-link $(pkg-config --cflags lua5.4 libcurl openssl hiredis) -c "$src" -o "$obj"
  objs+=("$obj")
done
$CC -O1 -g $SAN -fsanitize=fuzzer $(pkg-config --cflags lua5.4) fuzz/harness.c "${objs[@]}" \
  -o "$DIR/harness" $(pkg-config --libs lua5.4 libcurl openssl hiredis)

# key seeds: RSA private (plain, encrypted with "pass"), public, and an EC key
k="$DIR/seeds/keys"
if [ ! -f "$k/private" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$k/rsa.pem" 2>/dev/null
  { printf '\377'; cat "$k/rsa.pem"; } > "$k/private"
  { printf '\377'; openssl pkey -in "$k/rsa.pem" -pubout; } > "$k/public"
  { printf '\004pass'; openssl pkey -in "$k/rsa.pem" -aes-128-cbc -passout pass:pass; } > "$k/encrypted"
  { printf '\377'; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null; } > "$k/ec"
  { printf '\377'; openssl rsa -in "$k/rsa.pem" -traditional 2>/dev/null; } > "$k/traditional"
  rm -f "$k/rsa.pem"
fi

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export AK_FUZZ_TMP="$ROOT/$DIR/tmp"  # the only place a target writes files
trap 'rm -rf "$AK_FUZZ_TMP"' EXIT
failed=()
for target in fuzz/core/*.lua; do
  name=$(basename "$target" .lua)
  corpus="$DIR/corpus/$name"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
  [ -d "$DIR/seeds/$name" ] && seeds+=("$DIR/seeds/$name")
  echo "== fuzz $name (${SECS}s)"
  if (cd "$DIR" && AK_FUZZ_TARGET="$ROOT/$target" ./harness -max_total_time="$SECS" -timeout=20 \
       -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -detect_leaks=0 \
       -artifact_prefix="artifacts/$name-" "corpus/$name" "${seeds[@]/#/$ROOT/}") \
       > "$DIR/$name.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$DIR/$name.log" | tr '\n' ' '
    echo
  else
    # the report: from the sanitizer's or the harness's first line on
    awk '/ERROR: |harness: |deadly signal/ { on = 1 } on && n++ < 40' "$DIR/$name.log"
    failed+=("$name")
  fi
done

# Lua fuzz targets (luajit), each bounded by --seconds
for target in fuzz/*.lua; do
  [ -e "$target" ] || continue
  echo "== fuzz $(basename "$target") (luajit, ${SECS}s)"
  LUA_CPATH="$ROOT/build/luajit/?.so;;" luajit "$target" --seconds "$SECS" || failed+=("$target")
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $DIR/artifacts/)" >&2
  exit 1
fi
echo "fuzz: clean"
