#!/usr/bin/env bash
# Installs the Debian packages assesskit needs (when run as root), or names them.
# Used by `make deps`, so `make test` and `make demo` work on a fresh Debian 12 machine.
set -eu
# nginx's Lua module depends on OpenResty's LuaJIT fork: luajit2, not luajit.
pkgs=(build-essential pkg-config ca-certificates curl openssl
      lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
      libcurl4-openssl-dev libssl-dev
      lua-cjson lua-busted lua-luassert lua-socket lua-luaossl lua-check lua-ldoc lua-markdown luarocks
      nginx-light libnginx-mod-http-lua valgrind zip unzip
      clang libclang-rt-14-dev  # make sanitize, make fuzz (ASan/UBSan, libFuzzer)
      libhiredis-dev redis-server lua-nginx-redis
      locales)
# lua-nginx-redis (resty.redis, installed as nginx.redis) pulls in nginx-extras, a metapackage
# of modules beside nginx-light's; the specs' nginx loads only the Lua module. redis-server is
# for the specs only (each starts its own on a free loopback port); a service the package may
# start is not used. locales: the locale sources from which spec/core_json_spec.lua makes a
# decimal-comma LC_NUMERIC.
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "assesskit needs these Debian packages; install them as root:" >&2
  echo "  apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
