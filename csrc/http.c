/***
 * HTTP sessions over libcurl: one reusable easy handle per session, whose live connection
 * outlives curl_easy_reset, so consecutive requests to a host reuse the connection; and a
 * share handle that holds the session's DNS and TLS session caches (the design asks for it;
 * the easy handle alone would keep them too, so it changes nothing measurable today, but any
 * further handle a session gains would share them through it).
 * @submodule assesskit.core
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>

#include "core.h"

#define SESSION_CLASS "assesskit.session"
#define DEFAULT_MAX_RESPONSE ((lua_Integer)64 * 1024 * 1024)
#define MAX_HEADER_BYTES ((size_t)1024 * 1024)
#define KEEP_BUFFER_BYTES ((size_t)64 * 1024)

typedef struct {
  char *data;
  size_t len, cap;
} ak_buf;

typedef struct {
  CURL *easy;               /* NULL once closed */
  CURLSH *share;
  /* session options (owned copies) */
  char *ca_file, *ca_path, *proxy, *user_agent;
  long http_version;
  int allow_http;
  size_t max_response;
  /* statistics */
  lua_Integer requests, connects;
  /* per-request state: everything below is released by req_release */
  int busy;
  CURLU *url;
  struct curl_slist *headers;
  curl_mime *mime;
  FILE *out;
  ak_buf body, head;
  size_t written;
  int buffering;            /* the body is held in memory (no output file) */
  int nobody;               /* HEAD */
  int bodiless;             /* the current response is 1xx, 204 or 304 */
  unsigned long long announced;  /* Content-Length over the cap, or 0 */
  int too_large, head_too_large, out_of_memory, write_failed, write_errno, cb_failed;
  lua_State *L;             /* only during curl_easy_perform */
  int progress_idx, error_idx;
  curl_off_t last_now, last_total;
  char errbuf[CURL_ERROR_SIZE];
} ak_session;

/* ---- growable buffer (luaL_Buffer cannot live across libcurl callbacks) ---- */

static int buf_append(ak_buf *b, const char *p, size_t n)
{
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 16384;
    char *data;
    while (cap - b->len < n) {
      if (cap > ((size_t)-1) / 2) {
        cap = b->len + n;
        if (cap < b->len)
          return 0;
        break;
      }
      cap *= 2;
    }
    data = realloc(b->data, cap);
    if (data == NULL)
      return 0;
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 1;
}

static void buf_release(ak_buf *b, size_t keep)
{
  if (b->cap > keep) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
  b->len = 0;
}

/* ---- per-request state ---- */

static void req_release(ak_session *s)
{
  if (s->url) { curl_url_cleanup(s->url); s->url = NULL; }
  if (s->headers) { curl_slist_free_all(s->headers); s->headers = NULL; }
  if (s->mime) { curl_mime_free(s->mime); s->mime = NULL; }
  if (s->out) { fclose(s->out); s->out = NULL; }
  buf_release(&s->body, KEEP_BUFFER_BYTES);
  buf_release(&s->head, KEEP_BUFFER_BYTES);
  s->written = 0;
  s->buffering = 1;
  s->nobody = s->bodiless = 0;
  s->too_large = s->head_too_large = s->out_of_memory = 0;
  s->announced = 0;
  s->write_failed = s->write_errno = s->cb_failed = 0;
  s->L = NULL;
  s->progress_idx = s->error_idx = 0;
  s->last_now = s->last_total = -1;
  s->errbuf[0] = '\0';
}

/* ---- libcurl callbacks: no Lua API that can raise is used here ---- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
  ak_session *s = ud;
  size_t n = size * nmemb;
  if (s->out != NULL) {
    if (n > 0 && fwrite(p, 1, n, s->out) != n) {
      s->write_failed = 1;
      s->write_errno = errno;
      return 0;
    }
    s->written += n;
    return n;
  }
  if (n > s->max_response - s->body.len) {
    s->too_large = 1;
    return 0;
  }
  if (!buf_append(&s->body, p, n)) {
    s->out_of_memory = 1;
    return 0;
  }
  return n;
}

static int starts_with_ci(const char *p, size_t n, const char *prefix)
{
  size_t k = strlen(prefix);
  return n >= k && strncasecmp(p, prefix, k) == 0;
}

/* Whether a status line ("HTTP/1.1 304 ...", "HTTP/2 204") is that of a response without a
 * body (1xx, 204, 304): its Content-Length, if any, announces no bytes to come. */
static int bodiless_status(const char *p, size_t n)
{
  const char *sp = memchr(p, ' ', n);
  int code = 0, i;
  if (sp == NULL || (size_t)(p + n - sp) < 4)
    return 0;
  for (i = 1; i <= 3; i++) {
    if (sp[i] < '0' || sp[i] > '9')
      return 0;
    code = code * 10 + (sp[i] - '0');
  }
  return code < 200 || code == 204 || code == 304;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
  ak_session *s = ud;
  size_t n = size * nmemb;
  if (starts_with_ci(p, n, "HTTP/")) {
    s->head.len = 0;  /* a new response (after 1xx): keep only the last one's headers */
    s->bodiless = bodiless_status(p, n);
  } else if (s->buffering && !s->nobody && !s->bodiless &&
             starts_with_ci(p, n, "content-length:")) {
    /* Refuse a body announced larger than the cap before any of it arrives. */
    size_t i = strlen("content-length:");
    unsigned long long v = 0;
    int digits = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
      i++;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
      if (v > (ULLONG_MAX - 9) / 10) { v = ULLONG_MAX; break; }
      v = v * 10 + (unsigned long long)(p[i] - '0');
    }
    if (digits > 0 && v > (unsigned long long)s->max_response) {
      s->too_large = 1;
      s->announced = v;
      return 0;
    }
  }
  if (n > MAX_HEADER_BYTES - s->head.len) {
    s->head_too_large = 1;
    return 0;
  }
  if (!buf_append(&s->head, p, n)) {
    s->out_of_memory = 1;
    return 0;
  }
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
  ak_session *s = ud;
  lua_State *L = s->L;
  (void)ultotal;
  (void)ulnow;
  if (s->cb_failed)
    return 1;
  if (dlnow == s->last_now && dltotal == s->last_total)
    return 0;
  s->last_now = dlnow;
  s->last_total = dltotal;
  /* Stack room was reserved before the transfer; a Lua error is caught by lua_pcall,
   * stashed, and the transfer aborted: nothing unwinds through libcurl. */
  lua_pushvalue(L, s->progress_idx);
  lua_pushinteger(L, (lua_Integer)dlnow);
  if (dltotal > 0)
    lua_pushinteger(L, (lua_Integer)dltotal);
  else
    lua_pushnil(L);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_replace(L, s->error_idx);
    s->cb_failed = 1;
    return 1;
  }
  return 0;
}

/* ---- helpers ---- */

static ak_session *session_check(lua_State *L)
{
  return luaL_checkudata(L, 1, SESSION_CLASS);
}

static int result_fail(lua_State *L, const char *msg, const char *kind)
{
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, kind);
  return 3;
}

static int is_token_char(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *p, size_t n)
{
  size_t i;
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++)
    if (!is_token_char((unsigned char)p[i]))
      return 0;
  return 1;
}

/* 127.0.0.0/8, ::1 or localhost (the host as curl_url normalised it). */
static int is_loopback(const char *host)
{
  char buf[64];
  size_t n = strlen(host);
  struct in_addr a4;
  struct in6_addr a6;
  if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
    return 1;
  if (host[0] == '[') {
    size_t end = 1;
    while (end < n && host[end] != ']' && host[end] != '%')
      end++;
    if (end - 1 >= sizeof buf)
      return 0;
    memcpy(buf, host + 1, end - 1);
    buf[end - 1] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
  }
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return 0;
}

static const char *error_kind(CURLcode rc)
{
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  case CURLE_ABORTED_BY_CALLBACK:
    return "aborted";
  case CURLE_FILESIZE_EXCEEDED:
    return "too_large";
  case CURLE_WRITE_ERROR:
  case CURLE_READ_ERROR:
    return "io";
  default:
    /* refused, reset, unresolvable, truncated, empty reply, HTTP/2 framing, proxy... */
    return "network";
  }
}

/* Reads optional string field `name` of the table at `idx` into a malloc'd copy. */
static void opt_string(lua_State *L, int idx, const char *name, char **dst)
{
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    size_t n;
    const char *v;
    if (lua_type(L, -1) != LUA_TSTRING)
      ak_fielderror(L, idx, name, "string", -1);
    v = lua_tolstring(L, -1, &n);
    if (strlen(v) != n)
      luaL_error(L, "bad argument #%d (field '%s' contains a NUL byte)", idx, name);
    *dst = malloc(n + 1);
    if (*dst == NULL)
      luaL_error(L, "out of memory");
    memcpy(*dst, v, n + 1);
  }
  lua_pop(L, 1);
}

static int opt_boolean(lua_State *L, int idx, const char *name, int dflt)
{
  int v = dflt;
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TBOOLEAN)
      ak_fielderror(L, idx, name, "boolean", -1);
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* Optional non-negative seconds as milliseconds for libcurl (0 = no limit). */
static long opt_millis(lua_State *L, int idx, const char *name)
{
  double t = 0;
  long ms = 0;
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      ak_fielderror(L, idx, name, "number", -1);
    t = (double)lua_tonumber(L, -1);
    if (!(t >= 0))
      luaL_error(L, "bad argument #%d (field '%s' must be >= 0)", idx, name);
  }
  lua_pop(L, 1);
  if (t > 0) {
    double m = t * 1000.0 + 0.5;
    ms = m >= (double)INT_MAX ? INT_MAX : (long)m;  /* ~24 days: "no practical limit" */
    if (ms == 0)
      ms = 1;
  }
  return ms;
}

/* Sets the options every request of the session shares (after curl_easy_reset). */
static CURLcode apply_session_options(ak_session *s)
{
  CURL *e = s->easy;
  CURLcode rc = CURLE_OK;
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
  SET(CURLOPT_SHARE, s->share);
  SET(CURLOPT_ERRORBUFFER, s->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  /* InterviewMocha requires TLS 1.2 or later; so do we, whatever the system's OpenSSL allows. */
  SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_HTTP_VERSION, s->http_version);
  SET(CURLOPT_USERAGENT, s->user_agent);
  if (s->ca_file) SET(CURLOPT_CAINFO, s->ca_file);
  if (s->ca_path) SET(CURLOPT_CAPATH, s->ca_path);
  if (s->proxy) SET(CURLOPT_PROXY, s->proxy);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, s);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, s);
#undef SET
  return rc;
}

/* Request headers (map name -> string or array of strings) into s->headers. */
static void build_headers(lua_State *L, ak_session *s, int idx)
{
  if (lua_type(L, idx) != LUA_TTABLE)
    ak_fielderror(L, 2, "headers", "table", idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t nlen, vlen, i, count;
    const char *name;
    int vt = lua_type(L, -1), isarray = vt == LUA_TTABLE;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad argument #2 (field 'headers': names must be strings)");
    name = lua_tolstring(L, -2, &nlen);
    if (!is_token(name, nlen))
      luaL_error(L, "bad argument #2 (header name '%s' is not a token)", name);
    if (!isarray && vt != LUA_TSTRING && vt != LUA_TNUMBER)
      luaL_error(L, "bad argument #2 (header '%s': string or array expected, got %s)", name,
                 luaL_typename(L, -1));
    count = isarray ? lua_rawlen(L, -1) : 1;
    for (i = 1; i <= count; i++) {
      const char *value;
      struct curl_slist *l;
      if (isarray) {
        lua_rawgeti(L, -1, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
          luaL_error(L, "bad argument #2 (header '%s'[%d]: string expected, got %s)", name,
                     (int)i, luaL_typename(L, -1));
      } else
        lua_pushvalue(L, -1);
      value = lua_tolstring(L, -1, &vlen);
      if (strlen(value) != vlen || strpbrk(value, "\r\n") != NULL)
        luaL_error(L, "bad argument #2 (header '%s': value contains CR, LF or NUL)", name);
      /* "Name;" sends an empty header; "Name:" would delete it. */
      if (vlen == 0)
        lua_pushfstring(L, "%s;", name);
      else
        lua_pushfstring(L, "%s: %s", name, value);
      l = curl_slist_append(s->headers, lua_tostring(L, -1));
      if (l == NULL)
        luaL_error(L, "out of memory");
      s->headers = l;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
}

/* Reads optional string field `name` of the part table on top of the stack. */
static const char *part_string(lua_State *L, const char *name, size_t *len, int index)
{
  const char *v = NULL;
  lua_getfield(L, -1, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad argument #2 (multipart[%d].%s: string expected, got %s)", index,
                 name, luaL_typename(L, -1));
    v = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1);  /* still referenced by the part table, itself anchored by req */
  return v;
}

/* Builds s->mime from the multipart array at idx. Returns 0, or 1 with an "io" failure
 * (message pushed) when a file part cannot be read. */
static int build_multipart(lua_State *L, ak_session *s, int idx)
{
  size_t count, i;
  if (lua_type(L, idx) != LUA_TTABLE)
    ak_fielderror(L, 2, "multipart", "table", idx);
  s->mime = curl_mime_init(s->easy);
  if (s->mime == NULL)
    luaL_error(L, "out of memory");
  count = lua_rawlen(L, idx);
  for (i = 1; i <= count; i++) {
    size_t nlen = 0, vlen = 0, flen = 0, fnlen = 0, ctlen = 0;
    const char *name, *value, *file, *filename, *ctype;
    curl_mimepart *part;
    CURLcode rc = CURLE_OK;
    lua_rawgeti(L, idx, (int)i);
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_error(L, "bad argument #2 (multipart[%d]: table expected, got %s)", (int)i,
                 luaL_typename(L, -1));
    name = part_string(L, "name", &nlen, (int)i);
    value = part_string(L, "value", &vlen, (int)i);
    file = part_string(L, "file", &flen, (int)i);
    filename = part_string(L, "filename", &fnlen, (int)i);
    ctype = part_string(L, "content_type", &ctlen, (int)i);
    if (name == NULL)
      luaL_error(L, "bad argument #2 (multipart[%d].name is required)", (int)i);
    if ((value == NULL) == (file == NULL))
      luaL_error(L, "bad argument #2 (multipart[%d] needs exactly one of value, file)",
                 (int)i);
    if (strlen(name) != nlen || (file && strlen(file) != flen) ||
        (filename && strlen(filename) != fnlen) || (ctype && strlen(ctype) != ctlen) ||
        strpbrk(name, "\r\n\"") != NULL || (filename && strpbrk(filename, "\r\n\"")) ||
        (ctype && strpbrk(ctype, "\r\n")))
      luaL_error(L, "bad argument #2 (multipart[%d]: NUL, CR, LF or quote in a name)",
                 (int)i);
    if (file != NULL) {
      FILE *f = fopen(file, "rb");
      if (f == NULL) {
        lua_pushfstring(L, "cannot read multipart file '%s': %s", file, strerror(errno));
        return 1;
      }
      fclose(f);
    }
    part = curl_mime_addpart(s->mime);
    if (part == NULL)
      luaL_error(L, "out of memory");
    rc = curl_mime_name(part, name);
    if (rc == CURLE_OK)
      rc = file ? curl_mime_filedata(part, file) : curl_mime_data(part, value, vlen);
    if (rc == CURLE_OK && filename)
      rc = curl_mime_filename(part, filename);
    if (rc == CURLE_OK && ctype)
      rc = curl_mime_type(part, ctype);
    if (rc != CURLE_OK)
      luaL_error(L, "multipart[%d]: %s", (int)i, curl_easy_strerror(rc));
    lua_pop(L, 1);
  }
  return 0;
}

/* Pushes the response headers (final response only) as a table. */
static void push_headers(lua_State *L, ak_session *s)
{
  char *p = s->head.data, *end = p + s->head.len;
  int first = 1;
  lua_newtable(L);
  while (p < end) {
    char *eol = memchr(p, '\n', (size_t)(end - p)), *colon, *name_end, *v, *vend, *q;
    if (eol == NULL)
      eol = end;
    colon = first ? NULL : memchr(p, ':', (size_t)(eol - p));
    first = 0;
    if (colon != NULL && colon > p && *p != ' ' && *p != '\t') {
      name_end = colon;
      while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
        name_end--;
      for (q = p; q < name_end; q++)
        if (*q >= 'A' && *q <= 'Z')
          *q = (char)(*q - 'A' + 'a');
      v = colon + 1;
      vend = eol;
      while (v < vend && (*v == ' ' || *v == '\t'))
        v++;
      while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
      /* Obsolete line folding (RFC 9112 section 5.2): libcurl hands each continuation line
       * over on its own; it continues this value after one space. Moved down in place, so the
       * work stays linear in the size of the block. */
      while (end - eol > 1 && (eol[1] == ' ' || eol[1] == '\t')) {
        char *c = eol + 1, *cend;
        eol = memchr(c, '\n', (size_t)(end - c));
        if (eol == NULL)
          eol = end;
        cend = eol;
        while (c < cend && (*c == ' ' || *c == '\t'))
          c++;
        while (cend > c && (cend[-1] == '\r' || cend[-1] == ' ' || cend[-1] == '\t'))
          cend--;
        if (cend > c) {
          if (vend > v)
            *vend++ = ' ';
          memmove(vend, c, (size_t)(cend - c));
          vend += cend - c;
        }
      }
      lua_pushlstring(L, p, (size_t)(name_end - p));
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_rawset(L, -3);
      } else if (lua_type(L, -1) == LUA_TSTRING) {
        lua_createtable(L, 2, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_rawseti(L, -2, 2);
        lua_rawset(L, -3);
      } else {
        int n = (int)lua_rawlen(L, -1);
        lua_pushlstring(L, v, (size_t)(vend - v));
        lua_rawseti(L, -2, n + 1);
        lua_pop(L, 2);
      }
    }
    p = eol + 1;
  }
}

/***
 * Create an HTTP session.
 * @function session
 * @tparam[opt] table opts `ca_file`, `ca_path`, `proxy`, `user_agent`,
 *   `max_response_size` (bytes held in memory, default 64 MiB), `http2` (default true
 *   where libcurl has it), `allow_http` (default false: plain http only to loopback)
 * @treturn session
 * @usage local s = core.session{ ca_file = "ca.pem" }
 */
static int session_new(lua_State *L)
{
  static const char *const known[] = {"ca_file", "ca_path", "proxy", "user_agent",
                                      "max_response_size", "http2", "allow_http", NULL};
  const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
  ak_session *s;
  int http2;
  lua_Integer max = DEFAULT_MAX_RESPONSE;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    int i, ok = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (i = 0; known[i] != NULL; i++)
        if (strcmp(lua_tostring(L, -1), known[i]) == 0)
          ok = 1;
    if (!ok) {
      lua_pushvalue(L, -1);
      return luaL_error(L, "bad argument #1 (unknown option '%s')",
                        luaL_checkstring(L, -1));
    }
  }
  /* Created closed, then filled: a raise below leaves a handle __gc can free. */
  s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SESSION_CLASS);
  req_release(s);
  opt_string(L, 1, "ca_file", &s->ca_file);
  opt_string(L, 1, "ca_path", &s->ca_path);
  opt_string(L, 1, "proxy", &s->proxy);
  opt_string(L, 1, "user_agent", &s->user_agent);
  if (s->user_agent == NULL) {
    const char *ua = lua_pushfstring(L, "assesskit/%s libcurl/%s", ak_version(L), info->version);
    s->user_agent = malloc(strlen(ua) + 1);
    if (s->user_agent == NULL)
      return luaL_error(L, "out of memory");
    strcpy(s->user_agent, ua);
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "max_response_size");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      return ak_fielderror(L, 1, "max_response_size", "number", -1);
    max = lua_tointeger(L, -1);
    if (max < 0 || (lua_Number)max != lua_tonumber(L, -1))
      return luaL_error(L, "bad argument #1 (max_response_size must be an integer >= 0)");
  }
  lua_pop(L, 1);
  s->max_response = (size_t)max;
  http2 = opt_boolean(L, 1, "http2", 1) && (info->features & CURL_VERSION_HTTP2);
  s->http_version = http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1;
  s->allow_http = opt_boolean(L, 1, "allow_http", 0);
  s->share = curl_share_init();
  if (s->share == NULL)
    return luaL_error(L, "out of memory");
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  s->easy = curl_easy_init();
  if (s->easy == NULL)
    return luaL_error(L, "out of memory");
  return 1;
}

/* Pushes the outcome of a performed transfer: status, headers, body or nil, message, kind. */
static int push_result(lua_State *L, ak_session *s, CURLcode rc, long status)
{
  if (s->cb_failed) {
    lua_pushnil(L);
    if (lua_type(L, s->error_idx) == LUA_TSTRING || lua_type(L, s->error_idx) == LUA_TNUMBER)
      lua_pushvalue(L, s->error_idx);
    else
      lua_pushfstring(L, "on_progress raised a %s value", luaL_typename(L, s->error_idx));
    lua_pushliteral(L, "aborted");
    return 3;
  }
  if (s->write_failed) {
    lua_pushfstring(L, "cannot write output: %s", strerror(s->write_errno));
    return result_fail(L, lua_tostring(L, -1), "io");
  }
  if (s->too_large) {
    char msg[160];
    if (s->announced)
      snprintf(msg, sizeof msg, "response body of %llu bytes announced, over "
               "max_response_size (%llu bytes)", s->announced,
               (unsigned long long)s->max_response);
    else
      snprintf(msg, sizeof msg, "response body larger than max_response_size (%llu bytes)",
               (unsigned long long)s->max_response);
    return result_fail(L, msg, "too_large");
  }
  if (s->head_too_large)
    return result_fail(L, "response headers larger than 1 MiB", "too_large");
  if (s->out_of_memory)
    return result_fail(L, "out of memory while receiving the response", "too_large");
  if (rc != CURLE_OK)
    return result_fail(L, s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc),
                       error_kind(rc));

  lua_pushinteger(L, (lua_Integer)status);
  push_headers(L, s);
  if (s->buffering)
    lua_pushlstring(L, s->body.len ? s->body.data : "", s->body.len);
  else
    lua_pushinteger(L, (lua_Integer)s->written);
  return 3;
}

/***
 * Perform one HTTP request on the session's connection.
 * @function session:request
 * @tparam table req `url` (required), `method` (default "GET", or "POST" with a body or
 *   multipart), `headers` (name ->
 *   string or array), `body` (string) or `multipart` (array of `{name=, value=}` or
 *   `{name=, file=path, filename=, content_type=}`), `timeout` and `connect_timeout`
 *   (seconds), `output` (path: stream the body there), `on_progress`
 *   (function(received, total)); total is nil while unknown
 * @treturn[1] integer status
 * @treturn[1] table headers (lower-case names; a repeated header is an array; folded lines
 *   joined with a space)
 * @treturn[1] string|integer body, or the number of bytes written to `output`
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind: `timeout`, `network`, `tls`, `too_large`, `insecure`, `io`,
 *   `aborted` or `closed`
 * @usage local status, headers, body = s:request{ url = "https://example.com/" }
 */
static int session_request(lua_State *L)
{
  ak_session *s = session_check(L);
  const char *url, *method = "GET";
  char *scheme = NULL, *host = NULL;
  size_t ulen, mlen = 3, blen = 0;
  int has_body, has_multipart, insecure = 0, top, nret;
  CURLUcode uc;
  CURLcode rc;
  long status = 0, connects = 0, ms;
  if (s->easy == NULL)
    return result_fail(L, "session is closed", "closed");
  if (s->busy)
    return luaL_error(L, "session is busy (request called from its own on_progress)");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  req_release(s);

  lua_getfield(L, 2, "url");                                   /* 3 */
  if (lua_type(L, 3) != LUA_TSTRING)
    return ak_fielderror(L, 2, "url", "string", 3);
  url = lua_tolstring(L, 3, &ulen);
  if (strlen(url) != ulen)  /* libcurl would read the URL only up to the NUL */
    return luaL_error(L, "bad argument #2 (field 'url' contains a NUL byte)");
  s->url = curl_url();
  if (s->url == NULL)
    return luaL_error(L, "out of memory");
  uc = curl_url_set(s->url, CURLUPART_URL, url, 0);
  if (uc != CURLUE_OK)
    return luaL_error(L, "bad argument #2 (field 'url': %s)", curl_url_strerror(uc));
  if (curl_url_get(s->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(s->url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    curl_free(scheme);
    curl_free(host);
    return luaL_error(L, "bad argument #2 (field 'url': no scheme or host)");
  }
  if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
    curl_free(scheme);
    curl_free(host);
    return luaL_error(L, "bad argument #2 (field 'url': http or https expected)");
  }
  insecure = strcmp(scheme, "http") == 0 && !s->allow_http && !is_loopback(host);
  curl_free(scheme);
  curl_free(host);
  if (insecure)
    return result_fail(L, "plain http to a non-loopback host is refused "
                          "(use https, or allow_http = true)", "insecure");

  curl_easy_reset(s->easy);
  rc = apply_session_options(s);
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(s->easy, CURLOPT_CURLU, s->url);
  if (rc != CURLE_OK)
    return luaL_error(L, "cannot configure the transfer: %s", curl_easy_strerror(rc));

  lua_getfield(L, 2, "method");                                /* 4 */
  if (!lua_isnil(L, 4)) {
    if (lua_type(L, 4) != LUA_TSTRING)
      return ak_fielderror(L, 2, "method", "string", 4);
    method = lua_tolstring(L, 4, &mlen);
    if (!is_token(method, mlen))
      return luaL_error(L, "bad argument #2 (field 'method' is not an HTTP method)");
  }
  lua_getfield(L, 2, "body");                                  /* 5 */
  lua_getfield(L, 2, "multipart");                             /* 6 */
  has_body = !lua_isnil(L, 5);
  has_multipart = !lua_isnil(L, 6);
  if (lua_isnil(L, 4) && (has_body || has_multipart))
    method = "POST";
  if (has_body && lua_type(L, 5) != LUA_TSTRING)
    return ak_fielderror(L, 2, "body", "string", 5);
  if (has_body && has_multipart)
    return luaL_error(L, "bad argument #2 (body and multipart are mutually exclusive)");
  lua_getfield(L, 2, "headers");                               /* 7 */
  if (!lua_isnil(L, 7))
    build_headers(L, s, 7);
  if (has_multipart && build_multipart(L, s, 6)) {
    const char *msg = lua_tostring(L, -1);
    return result_fail(L, msg, "io");
  }

  if (has_body || has_multipart) {
    if (has_body) {
      const char *b = lua_tolstring(L, 5, &blen);
      curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
      curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, b);
    } else
      curl_easy_setopt(s->easy, CURLOPT_MIMEPOST, s->mime);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(s->easy, CURLOPT_NOBODY, 1L);
    s->nobody = 1;
  } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
             strcmp(method, "PATCH") == 0) {
    /* an empty body: sends Content-Length: 0 */
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, "");
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method);
  if (s->headers)
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);

  ms = opt_millis(L, 2, "timeout");
  curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, ms);
  ms = opt_millis(L, 2, "connect_timeout");
  curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, ms);

  lua_getfield(L, 2, "on_progress");                           /* 8 */
  if (!lua_isnil(L, 8)) {
    if (lua_type(L, 8) != LUA_TFUNCTION)
      return ak_fielderror(L, 2, "on_progress", "function", 8);
    s->progress_idx = 8;
    curl_easy_setopt(s->easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(s->easy, CURLOPT_XFERINFODATA, s);
  }
  lua_pushnil(L);                                              /* 9: a callback's error */
  s->error_idx = 9;
  lua_getfield(L, 2, "output");                                /* 10 */
  if (!lua_isnil(L, 10)) {
    const char *path;
    size_t plen;
    if (lua_type(L, 10) != LUA_TSTRING)
      return ak_fielderror(L, 2, "output", "string", 10);
    path = lua_tolstring(L, 10, &plen);
    if (strlen(path) != plen)  /* fopen would write to the path cut short at the NUL */
      return luaL_error(L, "bad argument #2 (field 'output' contains a NUL byte)");
    s->out = fopen(path, "wb");
    if (s->out == NULL) {
      lua_pushfstring(L, "cannot open output '%s': %s", path, strerror(errno));
      return result_fail(L, lua_tostring(L, -1), "io");
    }
    s->buffering = 0;
  }
  /* Room for the callback's pushes, reserved now so that nothing in the callback raises. */
  if (!lua_checkstack(L, 8))
    return luaL_error(L, "stack overflow");
  top = lua_gettop(L);

  s->L = L;
  s->busy = 1;
  rc = curl_easy_perform(s->easy);
  s->busy = 0;
  s->L = NULL;
  lua_settop(L, top);
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
  s->requests++;
  s->connects += connects;
  if (s->out != NULL) {
    if (fclose(s->out) != 0 && !s->write_failed) {
      s->write_failed = 1;
      s->write_errno = errno;
    }
    s->out = NULL;
  }

  /* Release the request's buffers now, whatever the outcome: a failed transfer may hold up to
   * max_response_size bytes, which an idle session would otherwise keep until its next request. */
  nret = push_result(L, s, rc, status);
  req_release(s);
  return nret;
}

/***
 * Counters for tests and diagnostics.
 * @function session:stats
 * @treturn table `{requests=, connects=}`: requests performed, new connections opened
 */
static int session_stats(lua_State *L)
{
  ak_session *s = session_check(L);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, s->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, s->connects);
  lua_setfield(L, -2, "connects");
  return 1;
}

/***
 * Close the session and its connections. Idempotent; also `__gc` and `__close`.
 * @function session:close
 */
static int session_close(lua_State *L)
{
  ak_session *s = session_check(L);
  if (s->busy)
    return luaL_error(L, "session is busy (close called from its own on_progress)");
  req_release(s);
  buf_release(&s->body, 0);
  buf_release(&s->head, 0);
  if (s->easy) { curl_easy_cleanup(s->easy); s->easy = NULL; }
  if (s->share) { curl_share_cleanup(s->share); s->share = NULL; }
  free(s->ca_file); s->ca_file = NULL;
  free(s->ca_path); s->ca_path = NULL;
  free(s->proxy); s->proxy = NULL;
  free(s->user_agent); s->user_agent = NULL;
  return 0;
}

/***
 * Whether the session is closed.
 * @function session:is_closed
 * @treturn boolean
 */
static int session_is_closed(lua_State *L)
{
  lua_pushboolean(L, session_check(L)->easy == NULL);
  return 1;
}

static int session_tostring(lua_State *L)
{
  ak_session *s = session_check(L);
  lua_pushfstring(L, SESSION_CLASS " (%s): %p", s->easy ? "open" : "closed", (void *)s);
  return 1;
}

static const luaL_Reg session_methods[] = {
  {"request", session_request},
  {"stats", session_stats},
  {"close", session_close},
  {"is_closed", session_is_closed},
  {NULL, NULL}
};

static const luaL_Reg session_meta[] = {
  {"__gc", session_close},
  {"__close", session_close},
  {"__tostring", session_tostring},
  {NULL, NULL}
};

static const luaL_Reg http_funcs[] = {
  {"session", session_new},
  {NULL, NULL}
};

void http_open(lua_State *L)
{
  ak_newclass(L, SESSION_CLASS, session_methods, session_meta);
  luaL_setfuncs(L, http_funcs, 0);
}
