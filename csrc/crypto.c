/***
 * Small symmetric primitives over OpenSSL's EVP interface, for what a shared store keeps:
 * SHA-256, HKDF-SHA256 (RFC 5869), AES-256-GCM sealing, random bytes.
 *
 * A sealed value is `nonce (12 bytes) .. ciphertext .. tag (16 bytes)`, the nonce random for
 * each seal. Wrong argument types or sizes raise; a failure of OpenSSL, or a sealed value that
 * does not open (wrong key, altered bytes, other `aad`), returns `nil, message`.
 * @submodule assesskit.core
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "core.h"

#define GCM_NONCE 12
#define GCM_TAG 16
#define AEAD_KEY 32
#define HKDF_MAX (255 * 32)

static int crypto_fail(lua_State *L, const char *what)
{
  ERR_clear_error();
  lua_pushnil(L);
  lua_pushstring(L, what);
  return 2;
}

static int check_int_len(lua_State *L, size_t len, int arg)
{
  luaL_argcheck(L, len <= 0x7fffffe0u, arg, "too long");
  return (int)len;
}

/***
 * SHA-256 of a string.
 * @function sha256
 * @string data
 * @treturn string 32 raw bytes
 * @usage local id = core.b64url_encode(core.sha256("talview|password|client|user|url"))
 */
static int crypto_sha256(lua_State *L)
{
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  unsigned char md[32];
  unsigned int mdlen = 0;
  if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
    return crypto_fail(L, "sha256 failed");
  lua_pushlstring(L, (const char *)md, 32);
  return 1;
}

/***
 * HKDF-SHA256 (RFC 5869): derive `length` bytes from a secret.
 * @function hkdf
 * @string secret the input keying material (never stored or returned)
 * @string salt (may be empty)
 * @string info what the key is for (may be empty)
 * @int length bytes wanted, 1 to 8160
 * @treturn[1] string the derived bytes
 * @treturn[2] nil
 * @treturn[2] string the reason
 * @usage local key = core.hkdf(secret, "assesskit", "token", 32)
 */
static int crypto_hkdf(lua_State *L)
{
  size_t slen, saltlen, infolen;
  const char *secret = luaL_checklstring(L, 1, &slen);
  const char *salt = luaL_checklstring(L, 2, &saltlen);
  const char *info = luaL_checklstring(L, 3, &infolen);
  lua_Integer want = luaL_checkinteger(L, 4);
  EVP_KDF *kdf;
  EVP_KDF_CTX *kctx;
  OSSL_PARAM params[5], *p = params;
  unsigned char *out;
  int ok;
  luaL_argcheck(L, want >= 1 && want <= HKDF_MAX, 4, "length must be 1 to 8160");
  (void)check_int_len(L, slen, 1);
  out = lua_newuserdata(L, (size_t)want);
  kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  if (kdf == NULL)
    return crypto_fail(L, "hkdf: HKDF is not available");
  kctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (kctx == NULL)
    return crypto_fail(L, "hkdf: out of memory");
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
  *p = OSSL_PARAM_construct_end();
  ok = EVP_KDF_derive(kctx, out, (size_t)want, params) > 0;
  EVP_KDF_CTX_free(kctx);
  if (!ok)
    return crypto_fail(L, "hkdf: derivation failed");
  lua_pushlstring(L, (const char *)out, (size_t)want);
  OPENSSL_cleanse(out, (size_t)want);
  return 1;
}

/* One AES-256-GCM operation; `out` has room for the result. Returns the result's length or -1
 * (for open: -1 also when the tag does not match). */
static int gcm(int seal, const unsigned char *key, const unsigned char *nonce,
               const unsigned char *in, int inlen, const unsigned char *aad, int aadlen,
               unsigned char *out, unsigned char *tag)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0, total = -1, ok;
  if (ctx == NULL)
    return -1;
  ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, seal)
    && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE, NULL)
    && EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, seal)
    && (aadlen == 0 || EVP_CipherUpdate(ctx, NULL, &len, aad, aadlen))
    && EVP_CipherUpdate(ctx, out, &len, in, inlen);
  if (ok) {
    total = len;
    if (!seal)
      ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag);
    ok = ok && EVP_CipherFinal_ex(ctx, out + total, &len);
    if (ok) {
      total += len;
      if (seal)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag);
    }
    if (!ok)
      total = -1;
  }
  EVP_CIPHER_CTX_free(ctx);
  return total;
}

/***
 * Encrypt and authenticate with AES-256-GCM under a random nonce.
 * @function aead_seal
 * @string key 32 bytes (e.g. from `hkdf`)
 * @string plaintext
 * @tparam[opt] string aad bytes authenticated but not encrypted (e.g. the key name)
 * @treturn[1] string `nonce .. ciphertext .. tag` (28 bytes longer than the plaintext)
 * @treturn[2] nil
 * @treturn[2] string the reason
 */
static int crypto_aead_seal(lua_State *L)
{
  size_t klen, plen, alen = 0;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *plain = luaL_checklstring(L, 2, &plen);
  const char *aad = luaL_optlstring(L, 3, "", &alen);
  unsigned char *out;
  int n;
  luaL_argcheck(L, klen == AEAD_KEY, 1, "key must be 32 bytes");
  (void)check_int_len(L, plen, 2);
  (void)check_int_len(L, alen, 3);
  out = lua_newuserdata(L, GCM_NONCE + plen + GCM_TAG + 16);
  if (RAND_bytes(out, GCM_NONCE) != 1)
    return crypto_fail(L, "aead_seal: no random bytes");
  n = gcm(1, (const unsigned char *)key, out, (const unsigned char *)plain, (int)plen,
          (const unsigned char *)aad, (int)alen, out + GCM_NONCE, out + GCM_NONCE + plen);
  if (n != (int)plen)
    return crypto_fail(L, "aead_seal: encryption failed");
  lua_pushlstring(L, (const char *)out, GCM_NONCE + plen + GCM_TAG);
  return 1;
}

/***
 * Check and decrypt what `aead_seal` made.
 * @function aead_open
 * @string key 32 bytes
 * @string sealed `nonce .. ciphertext .. tag`
 * @tparam[opt] string aad as given to `aead_seal`
 * @treturn[1] string the plaintext
 * @treturn[2] nil
 * @treturn[2] string `"cannot open: wrong key or altered data"` or another reason
 */
static int crypto_aead_open(lua_State *L)
{
  size_t klen, slen, alen = 0, clen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const unsigned char *sealed = (const unsigned char *)luaL_checklstring(L, 2, &slen);
  const char *aad = luaL_optlstring(L, 3, "", &alen);
  unsigned char *out, tag[GCM_TAG];
  int n;
  luaL_argcheck(L, klen == AEAD_KEY, 1, "key must be 32 bytes");
  (void)check_int_len(L, slen, 2);
  (void)check_int_len(L, alen, 3);
  if (slen < GCM_NONCE + GCM_TAG)
    return crypto_fail(L, "cannot open: too short");
  clen = slen - GCM_NONCE - GCM_TAG;
  memcpy(tag, sealed + GCM_NONCE + clen, GCM_TAG);
  out = lua_newuserdata(L, clen + 16);
  n = gcm(0, (const unsigned char *)key, sealed, sealed + GCM_NONCE, (int)clen,
          (const unsigned char *)aad, (int)alen, out, tag);
  if (n != (int)clen) {
    OPENSSL_cleanse(out, clen);
    return crypto_fail(L, "cannot open: wrong key or altered data");
  }
  lua_pushlstring(L, (const char *)out, clen);
  OPENSSL_cleanse(out, clen);
  return 1;
}

/***
 * Random bytes from OpenSSL's CSPRNG.
 * @function random_bytes
 * @int n 1 to 1024
 * @treturn[1] string
 * @treturn[2] nil
 * @treturn[2] string the reason
 */
static int crypto_random_bytes(lua_State *L)
{
  lua_Integer n = luaL_checkinteger(L, 1);
  unsigned char buf[1024];
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "n must be 1 to 1024");
  if (RAND_bytes(buf, (int)n) != 1)
    return crypto_fail(L, "random_bytes: no random bytes");
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

static const luaL_Reg crypto_funcs[] = {
  {"sha256", crypto_sha256},
  {"hkdf", crypto_hkdf},
  {"aead_seal", crypto_aead_seal},
  {"aead_open", crypto_aead_open},
  {"random_bytes", crypto_random_bytes},
  {NULL, NULL}
};

void crypto_open(lua_State *L)
{
  luaL_setfuncs(L, crypto_funcs, 0);
}
