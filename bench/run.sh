#!/usr/bin/env bash
# make bench: prints figures, asserts nothing. Each bench starts its own server on a free
# loopback port and stops it.
#
# To add a bench: write bench/<name>.lua (use bench/support.lua for the bench nginx, the timing
# loop and the line format) and add a line in the list below.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bench
# The C floor: the same request loop straight on libcurl.
cc -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -O2 \
  $(pkg-config --cflags libcurl) bench/curl_floor.c -o build/bench/curl_floor \
  $(pkg-config --libs libcurl)
# ... and the same concurrency workload on libcurl's multi interface.
cc -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -O2 \
  $(pkg-config --cflags libcurl) bench/curl_multi.c -o build/bench/curl_multi \
  $(pkg-config --libs libcurl)

echo "== assesskit.core (lua5.4)"
lua5.4 bench/core.lua
if [ -f build/luajit/assesskit/core.so ]; then
  echo "== assesskit.core (luajit)"
  luajit bench/core.lua --no-openssl
fi

# -- more benches: one line each -------------------------------------------------------
if [ -f bench/talview.lua ]; then
  echo "== Talview client vs core"
  lua5.4 bench/talview.lua
fi
if [ -f bench/journal.lua ]; then
  echo "== journal: client:map with and without"
  lua5.4 bench/journal.lua
fi
if [ -f build/luajit/assesskit/core.so ]; then
  echo "== nginx transport vs core: chunked bodies"
  lua5.4 bench/ngx.lua
fi
echo "== JSON decoding: core.json_decode vs cjson"
lua5.4 bench/json.lua
if [ -f build/luajit/assesskit/core.so ]; then luajit bench/json.lua; fi
# bulk (issue 12): tv:map waves, the sandbox at 150 ms, an OpenResty gateway under wrk
if ! command -v wrk >/dev/null && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null || true
fi
echo "== bulk: tv:map (lua5.4)"
lua5.4 bench/bulk.lua
if [ -f build/luajit/assesskit/core.so ]; then
  echo "== bulk: tv:map (luajit)"
  luajit bench/bulk.lua --only wave
fi
# stores (issue 17): tv:map with the in-process, lua_shared_dict and Redis stores
echo "== stores: tv:map with each store"
lua5.4 bench/stores.lua
