#!/bin/sh
# The C flags that find lua.h for a luarocks build (`make rock`, run by luarocks through the
# rockspec's build.type = "make"), or a message saying what to do, on standard error, exit 1.
#
#   .ci/rock-lua.sh LUA LUA_INCDIR
#
# LUA is the interpreter luarocks targets (its $(LUA)), LUA_INCDIR the headers it found.
# assesskit's C core builds for two Lua APIs (csrc/compat.h): Lua 5.4, and LuaJIT 2.1 (the
# Lua 5.1 API plus luajit.h) for OpenResty and nginx's Lua module. luarocks' "5.1" means
# LuaJIT here: Debian's luarocks finds PUC Lua 5.1's headers in /usr/include/lua5.1, which
# cannot build the core, so LuaJIT's are taken from LUA_INCDIR when it holds luajit.h, else
# from pkg-config (luajit.pc, Debian's libluajit2-5.1-dev or libluajit-5.1-dev).
set -eu
lua=${1:-lua5.4}
incdir=${2:-}

die() {
  printf 'assesskit: %s\n' "$*" >&2
  exit 1
}

version=$("$lua" -e 'io.write((_VERSION:gsub("^Lua ", "")))' 2>/dev/null) \
  || die "cannot run the Lua interpreter '$lua' that luarocks targets"

case $version in
  5.4)
    [ -n "$incdir" ] || die "LUA_INCDIR is not set (luarocks sets it; else pass LUA_INCDIR=/usr/include/lua5.4)"
    [ -f "$incdir/lua.h" ] || die "no lua.h in LUA_INCDIR=$incdir (Debian: apt-get install liblua5.4-dev)"
    echo "-I$incdir"
    ;;
  5.1)
    if [ -n "$incdir" ] && [ -f "$incdir/luajit.h" ]; then
      echo "-I$incdir"
    elif pkg-config --exists luajit 2>/dev/null; then
      pkg-config --cflags luajit
    else
      die "for Lua 5.1 assesskit builds against LuaJIT 2.1 (OpenResty, nginx's Lua module), and no" \
        "luajit.h was found in LUA_INCDIR=${incdir:-(unset)} or through pkg-config luajit." \
        "Install LuaJIT's headers (Debian: apt-get install libluajit2-5.1-dev) or pass" \
        "LUA_INCDIR=/path/to/luajit-2.1 to luarocks; PUC Lua 5.1 cannot build it."
    fi
    ;;
  *)
    die "assesskit builds for Lua 5.4 or LuaJIT 2.1, not Lua $version:" \
      "use luarocks --lua-version=5.4, or --lua-version=5.1 with LuaJIT 2.1's headers installed"
    ;;
esac
