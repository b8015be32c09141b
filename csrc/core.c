/***
 * assesskit.core: the native part of assesskit (private; use the Lua modules).
 *
 * HTTP transfers over libcurl (`session`, `loop`), RS256 keys over OpenSSL (`load_key`),
 * base64url and RFC 3986 percent-encoding, JSON decoding that keeps integers (`json_decode`),
 * durable files for the journal (`file_sync`, `file_lock`, `file_truncate`, `dir_sync`),
 * SHA-256/HKDF/AES-GCM (`aead_seal`), Redis connections over libhiredis (`redis_connect`).
 * A wrong argument raises; a run-time failure returns
 * `nil, message[, kind]`.
 * @internal assesskit.core
 */
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "core.h"

/* The only mutable global: set once libcurl's global state is initialised. */
static int ak_curl_ready = 0;

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

/* Entry point of `require "assesskit.core"`: the library's only exported symbol (the
 * Makefile builds with -fvisibility=hidden). */
AK_EXPORT int luaopen_assesskit_core(lua_State *L);
AK_EXPORT int luaopen_assesskit_core(lua_State *L)
{
  if (!ak_curl_ready) {
    /* libcurl >= 7.84 makes curl_global_init thread-safe and reference counted. */
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
      return luaL_error(L, "assesskit.core: curl_global_init failed: %s",
                        curl_easy_strerror(rc));
    ak_curl_ready = 1;
  }
  ak_load_version(L);
  luaL_newlib(L, core_funcs);
  lua_pushstring(L, ak_version(L));
  lua_setfield(L, -2, "_VERSION");
  http_open(L);
  pkey_open(L);
  codec_open(L);
  json_open(L);
  crypto_open(L);
  redis_open(L);
  fileio_open(L);
  return 1;
}
