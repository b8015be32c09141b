/*
 * A minimal Lua 5.4 interpreter for `make sanitize` and `make fuzz`: built with the same
 * sanitizers as the core it loads, so that AddressSanitizer's runtime comes first in the
 * process without an LD_PRELOAD that every child (sh, nginx, openssl) would inherit, and so
 * that LeakSanitizer can run at exit.
 *
 *   lua_host SCRIPT|- [ARGS...]     like `lua5.4 SCRIPT ARGS...` (- reads the script from stdin)
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Lua unloads C modules at lua_close; LeakSanitizer runs later and could not name their
 * frames. Keep them loaded (this definition takes the place of libdl's: the host is linked
 * with -rdynamic). */
int dlclose(void *handle);
int dlclose(void *handle)
{
  (void)handle;
  return 0;
}

static int traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

int main(int argc, char **argv)
{
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT|- [ARGS...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL)
    return 1;
  luaL_openlibs(L);
  lua_createtable(L, argc, 1);  /* arg[-1] = this program, arg[0] = the script */
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, strcmp(argv[1], "-") == 0 ? NULL : argv[1]);
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++)
      lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK)
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
