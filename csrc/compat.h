/*
 * compat.h: every difference between the Lua 5.4 API and LuaJIT 2.1's (Lua 5.1) API that
 * the core uses. No other file tests LUA_VERSION_NUM.
 */
#ifndef ASSESSKIT_COMPAT_H
#define ASSESSKIT_COMPAT_H

#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>

/* AK_INTEGERS: 1 when Lua numbers can be 64-bit integers (Lua 5.3+: lua_pushinteger keeps
 * them, up to AK_MAXINTEGER), 0 on LuaJIT, where every number is a double. */
#if LUA_VERSION_NUM >= 503
#  define AK_INTEGERS 1
#  define AK_MAXINTEGER LUA_MAXINTEGER
#else
#  define AK_INTEGERS 0
#  define AK_MAXINTEGER 0
#endif

#if LUA_VERSION_NUM >= 502
#  define AK_LUA_VERSION LUA_RELEASE
#else
/* LuaJIT 2.1 already has luaL_setfuncs, luaL_newlib, luaL_testudata, luaL_setmetatable,
 * luaL_traceback and luaL_fileresult (lauxlib.h); it lacks these. */
#  include <luajit.h>
#  define AK_LUA_VERSION LUAJIT_VERSION
#  define lua_rawlen(L, i) lua_objlen((L), (i))
#  define lua_absindex(L, i) \
     (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#endif

/* The FILE* of the Lua file handle (io.open) at `idx`, NULL once it is closed; raises when
 * the value is not a file handle. Lua 5.4: a luaL_Stream, closed when `closef` is NULL.
 * LuaJIT: a userdata starting with the FILE*, which its close sets to NULL. Both keep the
 * metatable in the registry under LUA_FILEHANDLE ("FILE*"). */
#if LUA_VERSION_NUM >= 502
static inline FILE *ak_tofile(lua_State *L, int idx)
{
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  return p->closef == NULL ? NULL : p->f;
}
#else
#  include <lualib.h>
static inline FILE *ak_tofile(lua_State *L, int idx)
{
  return *(FILE **)luaL_checkudata(L, idx, LUA_FILEHANDLE);
}
#endif

/* The one symbol core.so exports; everything else is hidden (-fvisibility=hidden). */
#if defined(__GNUC__) || defined(__clang__)
#  define AK_EXPORT __attribute__((visibility("default")))
#else
#  define AK_EXPORT
#endif

#endif
