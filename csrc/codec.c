/***
 * Encodings: base64url (RFC 4648 section 5) and RFC 3986 percent-encoding.
 * @submodule assesskit.core
 */
#include <limits.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "util.h"

/* Input bytes per EVP_EncodeBlock call (a multiple of 3): keeps every length well inside an
 * int. */
#define ENC_CHUNK (3 * 4096)

/***
 * Base64url-encode a string, without padding.
 * @function b64url_encode
 * @string s bytes
 * @treturn string the encoding (alphabet `A-Za-z0-9-_`, no `=`)
 * @usage core.b64url_encode("\251\255") --> "-_8"
 */
static int codec_b64url_encode(lua_State *L)
{
  size_t n, i, outlen = 0;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
  unsigned char *out = lua_newuserdata(L, (n + 2) / 3 * 4 + 1);
  for (i = 0; i < n; i += ENC_CHUNK) {
    size_t take = n - i < ENC_CHUNK ? n - i : ENC_CHUNK;
    outlen += (size_t)EVP_EncodeBlock(out + outlen, in + i, (int)take);
  }
  while (outlen > 0 && out[outlen - 1] == '=')
    outlen--;
  for (i = 0; i < outlen; i++) {
    if (out[i] == '+') out[i] = '-';
    else if (out[i] == '/') out[i] = '_';
  }
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

/* Value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

static int decode_fail(lua_State *L, const char *why)
{
  lua_pushnil(L);
  lua_pushfstring(L, "invalid base64url: %s", why);
  return 2;
}

/***
 * Decode base64url. Padding (`=`) is accepted but not required; anything outside the
 * url-safe alphabet, a truncated final group or non-zero unused bits are rejected.
 * @function b64url_decode
 * @string s base64url text
 * @treturn[1] string the bytes
 * @treturn[2] nil
 * @treturn[2] string why the input is not base64url
 * @usage local raw = assert(core.b64url_decode("-_8")) --> "\251\255"
 */
static int codec_b64url_decode(lua_State *L)
{
  size_t n, m, i, rem, outlen = 0;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
  unsigned char *out;
  unsigned int acc = 0, bits = 0;
  m = n;
  while (m > 0 && in[m - 1] == '=' && n - m < 2)
    m--;
  if (m > 0 && in[m - 1] == '=')
    return decode_fail(L, "too much padding");
  if (m < n && n % 4 != 0)
    return decode_fail(L, "bad padding");
  rem = m % 4;
  if (rem == 1)
    return decode_fail(L, "truncated input");
  if (m < n && (rem == 0 || 4 - rem != n - m))
    return decode_fail(L, "bad padding");
  out = lua_newuserdata(L, m / 4 * 3 + 2);
  /* 6 bits per character; a byte out whenever 8 have gathered. */
  for (i = 0; i < m; i++) {
    int v = b64url_value(in[i]);
    if (v < 0)
      return decode_fail(L, in[i] == '=' ? "padding inside the input"
                                         : "character outside the base64url alphabet");
    acc = ((acc << 6) | (unsigned int)v) & 0xfff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[outlen++] = (unsigned char)(acc >> bits);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0)
    return decode_fail(L, "non-zero unused bits");
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

/***
 * Percent-encode a string per RFC 3986: every byte except `A-Za-z0-9-._~` becomes `%XX`.
 * @function url_encode
 * @string s bytes
 * @treturn string the encoding
 * @usage core.url_encode("a b&c") --> "a%20b%26c"
 */
static int codec_url_encode(lua_State *L)
{
  size_t n;
  const char *in = luaL_checklstring(L, 1, &n);
  char *scratch, *enc;
  size_t len;
  if (n == 0) {  /* curl_easy_escape would call strlen on length 0 */
    lua_pushliteral(L, "");
    return 1;
  }
  luaL_argcheck(L, n <= (size_t)INT_MAX / 3, 1, "string too long");
  /* Allocated before libcurl's copy so that nothing can raise while we hold it. */
  scratch = lua_newuserdata(L, 3 * n);
  enc = curl_easy_escape(NULL, in, (int)n);
  if (enc == NULL)
    return luaL_error(L, "url_encode: out of memory");
  len = strlen(enc);
  memcpy(scratch, enc, len);
  curl_free(enc);
  lua_pushlstring(L, scratch, len);
  return 1;
}

/***
 * Decode `%XX` escapes (a `+` stays a `+`).
 * @function url_decode
 * @string s percent-encoded text
 * @treturn string the bytes
 * @usage core.url_decode("a%20b") --> "a b"
 */
static int codec_url_decode(lua_State *L)
{
  size_t n;
  const char *in = luaL_checklstring(L, 1, &n);
  char *scratch, *dec;
  int len = 0;
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  luaL_argcheck(L, n <= (size_t)INT_MAX, 1, "string too long");
  scratch = lua_newuserdata(L, n);
  dec = curl_easy_unescape(NULL, in, (int)n, &len);
  if (dec == NULL)
    return luaL_error(L, "url_decode: out of memory");
  memcpy(scratch, dec, (size_t)len);
  curl_free(dec);
  lua_pushlstring(L, scratch, (size_t)len);
  return 1;
}

static const luaL_Reg codec_funcs[] = {
  {"b64url_encode", codec_b64url_encode},
  {"b64url_decode", codec_b64url_decode},
  {"url_encode", codec_url_encode},
  {"url_decode", codec_url_decode},
  {NULL, NULL}
};

void codec_open(lua_State *L)
{
  luaL_setfuncs(L, codec_funcs, 0);
}
