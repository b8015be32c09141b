/*
 * Helpers shared by the concern files of assesskit.core (see util.h).
 */
#include <string.h>

#include "util.h"

/* Registry key (its address) of the version string. */
static const char ak_version_key = 'v';

const char *ak_version(lua_State *L)
{
  const char *v;
  lua_pushlightuserdata(L, (void *)&ak_version_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  v = lua_tostring(L, -1); /* the registry keeps the string alive */
  lua_pop(L, 1);
  return v != NULL ? v : "?";
}

void ak_load_version(lua_State *L)
{
  lua_getglobal(L, "require");
  lua_pushliteral(L, "assesskit");
  if (lua_pcall(L, 1, 1, 0) != 0)
    luaL_error(L, "assesskit.core: cannot load the module assesskit for its version: %s",
               lua_tostring(L, -1));
  lua_getfield(L, -1, "_VERSION");
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "assesskit.core: the module assesskit has no _VERSION string");
  lua_pushlightuserdata(L, (void *)&ak_version_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
}

void ak_newclass(lua_State *L, const char *tname, const luaL_Reg *methods,
                 const luaL_Reg *meta)
{
  luaL_newmetatable(L, tname);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, tname);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

int ak_fielderror(lua_State *L, int arg, const char *name, const char *expected, int idx)
{
  return luaL_error(L, "bad argument #%d (field '%s': %s expected, got %s)", arg, name,
                    expected, luaL_typename(L, idx));
}

void ak_checkoptions(lua_State *L, int arg, const char *const known[])
{
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    int i, ok = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (i = 0; known[i] != NULL; i++)
        if (strcmp(lua_tostring(L, -1), known[i]) == 0)
          ok = 1;
    if (!ok) {
      lua_pushvalue(L, -1);
      luaL_error(L, "bad argument #%d (unknown option '%s')", arg, luaL_checkstring(L, -1));
    }
  }
}
