/*
 * Helpers shared by the concern files of assesskit.core (see util.h).
 */
#include <string.h>

#include "util.h"

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
