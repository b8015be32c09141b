/***
 * assesskit.core: the native part of assesskit (private; use the Lua modules).
 *
 * HTTP transfers over libcurl (`session`), RS256 keys over OpenSSL (`load_key`), base64url
 * and RFC 3986 percent-encoding, JSON decoding that keeps integers (`json_decode`). A wrong argument raises; a run-time failure returns
 * `nil, message[, kind]`.
 * @internal assesskit.core
 */
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "core.h"

/* The only mutable global: set once libcurl's global state is initialised. */
static int ak_curl_ready = 0;

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

/* Reads `require("assesskit")._VERSION` into the registry: one version for the rock, written
 * only in lua/assesskit/init.lua. */
static void load_version(lua_State *L)
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

/***
 * Versions of the libraries the core runs on.
 * @function versions
 * @treturn table `{curl=, openssl=, lua=, http2=boolean, assesskit=}`
 * @usage print(require("assesskit.core").versions().curl)
 */
static int core_versions(lua_State *L)
{
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, info->version);
  lua_setfield(L, -2, "curl");
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "openssl");
  lua_pushstring(L, AK_LUA_VERSION);
  lua_setfield(L, -2, "lua");
  lua_pushboolean(L, (info->features & CURL_VERSION_HTTP2) != 0);
  lua_setfield(L, -2, "http2");
  lua_pushstring(L, ak_version(L));
  lua_setfield(L, -2, "assesskit");
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"versions", core_versions},
  {NULL, NULL}
};

/* Entry point of `require "assesskit.core"`. */
int luaopen_assesskit_core(lua_State *L);
int luaopen_assesskit_core(lua_State *L)
{
  if (!ak_curl_ready) {
    /* libcurl >= 7.84 makes curl_global_init thread-safe and reference counted. */
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
      return luaL_error(L, "assesskit.core: curl_global_init failed: %s",
                        curl_easy_strerror(rc));
    ak_curl_ready = 1;
  }
  load_version(L);
  luaL_newlib(L, core_funcs);
  lua_pushstring(L, ak_version(L));
  lua_setfield(L, -2, "_VERSION");
  http_open(L);
  pkey_open(L);
  codec_open(L);
  json_open(L);
  return 1;
}
