/*
 * The libFuzzer driver of `make fuzz` for assesskit.core: every C entry point that takes
 * outside bytes is reached through the module's Lua functions, as a program would reach it.
 * The target is a Lua file (fuzz/core/<name>.lua, named by the environment variable
 * AK_FUZZ_TARGET) returning function(input): it calls the core with the fuzzed bytes and
 * raises when an invariant breaks. A raise, or anything AddressSanitizer or
 * UndefinedBehaviorSanitizer see, is a crash for libFuzzer.
 *
 * Built by .ci/fuzz.sh with the core's sources, instrumented for coverage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_assesskit_core(lua_State *L);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *state;
static int target_ref = LUA_NOREF;

static int traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  const char *target = getenv("AK_FUZZ_TARGET");
  (void)argc;
  (void)argv;
  if (target == NULL) {
    fprintf(stderr, "harness: set AK_FUZZ_TARGET to a fuzz/core/*.lua file\n");
    exit(2);
  }
  state = luaL_newstate();
  luaL_openlibs(state);
  lua_getglobal(state, "package");
  lua_getfield(state, -1, "preload");
  lua_pushcfunction(state, luaopen_assesskit_core);
  lua_setfield(state, -2, "assesskit.core");
  lua_pop(state, 2);
  lua_pushcfunction(state, traceback);
  if (luaL_loadfile(state, target) != LUA_OK || lua_pcall(state, 0, 1, -2) != LUA_OK ||
      lua_type(state, -1) != LUA_TFUNCTION) {
    fprintf(stderr, "harness: %s: %s\n", target,
            lua_isstring(state, -1) ? lua_tostring(state, -1) : "does not return a function");
    exit(2);
  }
  target_ref = luaL_ref(state, LUA_REGISTRYINDEX);
  lua_pop(state, 1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  lua_State *L = state;
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, target_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
    fprintf(stderr, "harness: invariant broken: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pop(L, 1);
  return 0;
}
