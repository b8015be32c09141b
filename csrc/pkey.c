/***
 * RSA keys over OpenSSL's EVP interface: RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
 * @submodule assesskit.core
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "util.h"

#define KEY_CLASS "assesskit.key"

typedef struct {
  EVP_PKEY *pkey;   /* NULL once closed */
  int is_private;
} ak_key;

typedef struct {
  const char *pass;
  size_t len;
  int asked;        /* the PEM was encrypted: OpenSSL asked for a passphrase */
} pass_info;

/* Pushes "what: reason" built from OpenSSL's error queue (its oldest entry, which names the
 * cause) and clears the queue. */
static void push_ssl_error(lua_State *L, const char *what)
{
  unsigned long e = ERR_peek_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  if (reason != NULL)
    lua_pushfstring(L, "%s: %s", what, reason);
  else
    lua_pushstring(L, what);
  ERR_clear_error();
}

static int fail(lua_State *L, const char *what, int with_ssl_reason)
{
  lua_pushnil(L);
  if (with_ssl_reason)
    push_ssl_error(L, what);
  else {
    ERR_clear_error();
    lua_pushstring(L, what);
  }
  return 2;
}

/* OpenSSL's passphrase callback: never prompts on a terminal. */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
  pass_info *pi = u;
  (void)rwflag;
  pi->asked = 1;
  if (pi->pass == NULL || size <= 0 || pi->len > (size_t)size)
    return -1;
  memcpy(buf, pi->pass, pi->len);
  return (int)pi->len;
}

/* Whether the parts of an RSA private key belong together: n = p*q, e*d = 1 mod p-1 and
 * mod q-1, and the CRT values d mod p-1, d mod q-1, q^-1 mod p. A key that parses but fails
 * this signs garbage. Big-number arithmetic, a few microseconds (OpenSSL's
 * EVP_PKEY_pairwise_check also tests p and q for primality: tens of milliseconds per load,
 * which jwt.encode with a PEM pays on every call); keys with more than two primes get it. */
static int key_consistent(EVP_PKEY *pkey)
{
  static const char *const names[] = {
    OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
    OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
  enum { N, E, D, P, Q, DP, DQ, QINV, PARTS };
  BIGNUM *v[PARTS] = {NULL}, *extra = NULL, *t = BN_new(), *u = BN_new(), *pm1 = BN_new(),
         *qm1 = BN_new();
  BN_CTX *bn = BN_CTX_new();
  int i, have = 1, ok = 0;
  for (i = 0; i < PARTS; i++)
    have = EVP_PKEY_get_bn_param(pkey, names[i], &v[i]) == 1 && have;
  if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR3, &extra) == 1 || !have) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    ok = ctx != NULL && EVP_PKEY_pairwise_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
  } else if (bn && t && u && pm1 && qm1) {
    ok = BN_mul(t, v[P], v[Q], bn) && BN_cmp(t, v[N]) == 0 &&                  /* n = p*q */
         BN_sub(pm1, v[P], BN_value_one()) && BN_sub(qm1, v[Q], BN_value_one()) &&
         BN_mul(t, v[E], v[D], bn) &&
         BN_mod(u, t, pm1, bn) && BN_is_one(u) &&                           /* e*d = 1 (p-1) */
         BN_mod(u, t, qm1, bn) && BN_is_one(u) &&                           /* e*d = 1 (q-1) */
         BN_mod(u, v[D], pm1, bn) && BN_cmp(u, v[DP]) == 0 &&                /* dp */
         BN_mod(u, v[D], qm1, bn) && BN_cmp(u, v[DQ]) == 0 &&                /* dq */
         BN_mod_mul(u, v[QINV], v[Q], v[P], bn) && BN_is_one(u);             /* qinv */
  }
  for (i = 0; i < PARTS; i++)
    BN_clear_free(v[i]);
  BN_clear_free(extra);
  BN_clear_free(t);
  BN_clear_free(u);
  BN_clear_free(pm1);
  BN_clear_free(qm1);
  BN_CTX_free(bn);
  ERR_clear_error();
  return ok;
}

static ak_key *key_check(lua_State *L)
{
  return luaL_checkudata(L, 1, KEY_CLASS);
}

/***
 * Load an RSA key from PEM: a private key (PKCS#8 or traditional, optionally encrypted) or
 * a public key (`BEGIN PUBLIC KEY`). Never prompts for a passphrase.
 * @function load_key
 * @string pem the PEM text
 * @tparam[opt] string passphrase for an encrypted private key
 * @treturn[1] key
 * @treturn[2] nil
 * @treturn[2] string the reason (bad PEM, passphrase required or wrong, not an RSA key, a
 *   private key whose parts do not belong together)
 * @usage local key = assert(core.load_key(io.open("key.pem"):read("a")))
 */
static int pkey_load(lua_State *L)
{
  size_t len;
  const char *pem = luaL_checklstring(L, 1, &len);
  pass_info pi = {NULL, 0, 0};
  ak_key *k;
  BIO *bio;
  EVP_PKEY *pkey;
  int is_private = 1, id;
  if (!lua_isnoneornil(L, 2))
    pi.pass = luaL_checklstring(L, 2, &pi.len);
  luaL_argcheck(L, len <= (size_t)0x7fffffff, 1, "PEM too long");
  /* The handle exists (closed) before any OpenSSL object, so nothing can leak. */
  k = lua_newuserdata(L, sizeof *k);
  k->pkey = NULL;
  k->is_private = 0;
  luaL_setmetatable(L, KEY_CLASS);

  ERR_clear_error();
  bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL)
    return fail(L, "cannot load key: out of memory", 0);
  pkey = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, &pi);
  if (pkey == NULL && !pi.asked) {
    is_private = 0;
    ERR_clear_error();
    (void)BIO_reset(bio);
    pkey = PEM_read_bio_PUBKEY(bio, NULL, pass_cb, &pi);
  }
  BIO_free(bio);
  if (pkey == NULL) {
    if (pi.asked && pi.pass == NULL)
      return fail(L, "cannot load key: the key is encrypted and no passphrase was given", 0);
    if (pi.asked)
      return fail(L, "cannot load key: wrong passphrase", 0);
    if (strstr(pem, "-----BEGIN") == NULL)
      return fail(L, "cannot load key: not PEM (no -----BEGIN line)", 0);
    return fail(L, "cannot load key: unreadable PEM", 1);
  }
  id = EVP_PKEY_get_base_id(pkey);
  if (id != EVP_PKEY_RSA) {
    const char *sn = OBJ_nid2sn(id);
    EVP_PKEY_free(pkey);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot load key: not an RSA key (%s); RS256 needs RSA",
                    sn ? sn : "unknown type");
    ERR_clear_error();
    return 2;
  }
  if (is_private && !key_consistent(pkey)) {
    EVP_PKEY_free(pkey);
    return fail(L, "cannot load key: inconsistent RSA private key (its parts do not belong "
                   "together)", 0);
  }
  k->pkey = pkey;
  k->is_private = is_private;
  return 1;
}

/***
 * Sign bytes with RS256.
 * @function key:sign
 * @string data the bytes to sign (for a JWS: the signing input)
 * @treturn[1] string the raw signature (as many bytes as the modulus)
 * @treturn[2] nil
 * @treturn[2] string why (public key, closed key, OpenSSL failure)
 */
static int key_sign(lua_State *L)
{
  ak_key *k = key_check(L);
  size_t n, siglen;
  const char *data = luaL_checklstring(L, 2, &n);
  unsigned char *sig;
  EVP_MD_CTX *ctx;
  int ok;
  if (k->pkey == NULL)
    return fail(L, "key is closed", 0);
  if (!k->is_private)
    return fail(L, "cannot sign with a public key", 0);
  siglen = (size_t)EVP_PKEY_get_size(k->pkey);
  sig = lua_newuserdata(L, siglen);  /* may raise: nothing is held yet */
  ERR_clear_error();
  ctx = EVP_MD_CTX_new();
  if (ctx == NULL)
    return fail(L, "sign: out of memory", 0);
  ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
       EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data, n) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok)
    return fail(L, "sign", 1);
  lua_pushlstring(L, (const char *)sig, siglen);
  return 1;
}

/***
 * Verify an RS256 signature.
 * @function key:verify
 * @string data the signed bytes
 * @string signature the raw signature
 * @treturn boolean true when the signature is valid for this key
 */
static int key_verify(lua_State *L)
{
  ak_key *k = key_check(L);
  size_t n, siglen;
  const char *data = luaL_checklstring(L, 2, &n);
  const char *sig = luaL_checklstring(L, 3, &siglen);
  EVP_MD_CTX *ctx;
  int ok;
  if (k->pkey == NULL)
    return fail(L, "key is closed", 0);
  ERR_clear_error();
  ctx = EVP_MD_CTX_new();
  if (ctx == NULL)
    return fail(L, "verify: out of memory", 0);
  ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
       EVP_DigestVerify(ctx, (const unsigned char *)sig, siglen,
                        (const unsigned char *)data, n) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  lua_pushboolean(L, ok);
  return 1;
}

/***
 * Size of the RSA modulus.
 * @function key:bits
 * @treturn[1] integer bits (e.g. 2048)
 * @treturn[2] nil
 * @treturn[2] string "key is closed"
 */
static int key_bits(lua_State *L)
{
  ak_key *k = key_check(L);
  if (k->pkey == NULL)
    return fail(L, "key is closed", 0);
  lua_pushinteger(L, EVP_PKEY_get_bits(k->pkey));
  return 1;
}

/***
 * Whether the key can sign.
 * @function key:is_private
 * @treturn boolean true for a private key (false once closed)
 */
static int key_is_private(lua_State *L)
{
  ak_key *k = key_check(L);
  lua_pushboolean(L, k->pkey != NULL && k->is_private);
  return 1;
}

/***
 * Free the key. Idempotent; also the key's `__gc` and `__close`.
 * @function key:close
 */
static int key_close(lua_State *L)
{
  ak_key *k = key_check(L);
  if (k->pkey != NULL) {
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
  }
  return 0;
}

static int key_tostring(lua_State *L)
{
  ak_key *k = key_check(L);
  if (k->pkey == NULL)
    lua_pushfstring(L, KEY_CLASS " (closed): %p", (void *)k);
  else
    lua_pushfstring(L, KEY_CLASS " (RSA %d, %s): %p", EVP_PKEY_get_bits(k->pkey),
                    k->is_private ? "private" : "public", (void *)k);
  return 1;
}

static const luaL_Reg key_methods[] = {
  {"sign", key_sign},
  {"verify", key_verify},
  {"bits", key_bits},
  {"is_private", key_is_private},
  {"close", key_close},
  {NULL, NULL}
};

static const luaL_Reg key_meta[] = {
  {"__gc", key_close},
  {"__close", key_close},
  {"__tostring", key_tostring},
  {NULL, NULL}
};

static const luaL_Reg pkey_funcs[] = {
  {"load_key", pkey_load},
  {NULL, NULL}
};

void pkey_open(lua_State *L)
{
  ak_newclass(L, KEY_CLASS, key_methods, key_meta);
  luaL_setfuncs(L, pkey_funcs, 0);
}
