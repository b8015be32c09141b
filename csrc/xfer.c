/*
 * One HTTP transfer: the request table into a fresh easy handle (prepare), libcurl's
 * callbacks, and the result. Shared by blocking requests (http.c) and loop transfers (loop.c).
 *
 * Rules the callbacks keep: no Lua API that can raise, except inside lua_pcall; a libcurl
 * callback never re-enters the handle's multi.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "http.h"

#define MAX_HEADER_BYTES ((size_t)1024 * 1024)
/* libcurl's own limits on what it receives (7.88.1: 100 KiB per header line, 300 KiB of
 * headers per response). It reports the first as "out of memory" and the second as a receive
 * error; both are a response too large for the client, so both are turned into too_large. */
#define CURL_MAX_HEADER_LINE "100 KiB"
#define CURL_MAX_HEADERS ((long)300 * 1024)

/* ---- buffers ---- */

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

void buf_release(ak_buf *b, size_t keep)
{
  if (b->cap > keep) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
  b->len = 0;
}

/* ---- state ---- */

void xfer_init(ak_xfer *x)
{
  memset(x, 0, sizeof *x);
  x->buffering = 1;
  x->in_headers = 1;
  x->anchor = x->self = x->result = LUA_NOREF;
  x->last_now = x->last_total = -1;
}

/* Frees what the request holds (the easy handle first: it points at the rest) and makes the
 * state ready for the next request, keeping buffers of up to `keep` bytes. The Lua references
 * are xfer_unref's. */
void xfer_release(ak_xfer *x, size_t keep)
{
  if (x->easy) { curl_easy_cleanup(x->easy); x->easy = NULL; }
  if (x->url) { curl_url_cleanup(x->url); x->url = NULL; }
  if (x->headers) { curl_slist_free_all(x->headers); x->headers = NULL; }
  if (x->mime) { curl_mime_free(x->mime); x->mime = NULL; }
  if (x->out) { fclose(x->out); x->out = NULL; }
  buf_release(&x->body, keep);
  buf_release(&x->head, keep);
  x->written = 0;
  x->buffering = 1;
  x->nobody = x->bodiless = x->got_response = x->after_status = x->has_length = 0;
  x->length_line = 0;
  x->in_headers = 1;
  x->length = x->announced = 0;
  x->fail = x->write_errno = x->sends = x->cancel_pending = 0;
  x->bad_reply = NULL;
  x->L = NULL;
  x->progress_idx = x->error_idx = 0;
  x->last_now = x->last_total = -1;
  x->rc = CURLE_OK;
  x->status = x->connects = x->header_size = 0;
  x->errbuf[0] = '\0';
}

void xfer_unref(lua_State *L, ak_xfer *x)
{
  luaL_unref(L, LUA_REGISTRYINDEX, x->anchor);
  luaL_unref(L, LUA_REGISTRYINDEX, x->self);
  luaL_unref(L, LUA_REGISTRYINDEX, x->result);
  x->anchor = x->self = x->result = LUA_NOREF;
}

static void set_fail(ak_xfer *x, int why)
{
  if (x->fail == FAIL_NONE)
    x->fail = why;
}

/* ---- libcurl callbacks ---- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
  ak_xfer *x = ud;
  size_t n = size * nmemb;
  if (x->out != NULL) {
    if (n > 0 && fwrite(p, 1, n, x->out) != n) {
      x->write_errno = errno;
      set_fail(x, FAIL_WRITE);
      return 0;
    }
    x->written += n;
    return n;
  }
  if (n > x->max_response - x->body.len) {
    set_fail(x, FAIL_BODY_SIZE);
    return 0;
  }
  if (!buf_append(&x->body, p, n)) {
    set_fail(x, FAIL_MEMORY);
    return 0;
  }
  return n;
}

static int starts_with_ci(const char *p, size_t n, const char *prefix)
{
  size_t k = strlen(prefix);
  return n >= k && strncasecmp(p, prefix, k) == 0;
}

/* The status code of a status line ("HTTP/1.1 304 ...", "HTTP/2 204"), or 0. */
static int status_code(const char *p, size_t n)
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
  return code;
}

static size_t refuse(ak_xfer *x, const char *why)
{
  x->bad_reply = why;
  set_fail(x, FAIL_BAD_REPLY);
  return 0;
}

/* A Content-Length line: 1*DIGIT, or a comma list of them (RFC 9110 section 8.6). Different
 * values are a framing error; identical ones are one value; anything else ("+2", "-1", "")
 * is refused. Returns 0 when the transfer must stop. */
static int content_length(ak_xfer *x, const char *p, size_t n)
{
  size_t i = strlen("content-length:");
  do {
    unsigned long long v = 0;
    int digits = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
      i++;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits++)
      v = v > (ULLONG_MAX - 9) / 10 ? ULLONG_MAX : v * 10 + (unsigned long long)(p[i] - '0');
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
      i++;
    if (digits == 0 || (i < n && p[i] != ','))
      return (int)refuse(x, "malformed Content-Length in the response");
    if (x->has_length && v != x->length)
      return (int)refuse(x, "conflicting Content-Length values in the response");
    x->length = v;
    x->has_length = 1;
  } while (i++ < n);  /* past the comma */
  /* Refuse a body announced larger than the cap before any of it arrives. */
  if (x->has_length && x->buffering && !x->nobody && !x->bodiless &&
      x->length > (unsigned long long)x->max_response) {
    x->announced = x->length;
    set_fail(x, FAIL_BODY_SIZE);
    return 0;
  }
  return 1;
}

/* Whether a field line's name can be taken: not empty, no whitespace inside (whitespace before
 * the colon is dropped, as libcurl and the nginx transport do). "X A: b" and ": b" cannot:
 * libcurl 7.88.1 takes the first as a header "x a" and drops the second. A line without a
 * colon is libcurl's to refuse. */
static int field_name_ok(const char *p, size_t n)
{
  const char *colon = memchr(p, ':', n);
  size_t i, end;
  if (colon == NULL)
    return 1;
  end = (size_t)(colon - p);
  while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
    end--;
  if (end == 0)
    return 0;
  for (i = 0; i < end; i++)
    if (p[i] == ' ' || p[i] == '\t')
      return 0;
  return 1;
}

/* Whether a header line holds only whitespace and its line end. */
static int blank(const char *p, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
      return 0;
  return 1;
}

static size_t keep_header(ak_xfer *x, const char *p, size_t n)
{
  if (n > MAX_HEADER_BYTES - x->head.len) {
    set_fail(x, FAIL_HEAD_SIZE);
    return 0;
  }
  if (!buf_append(&x->head, p, n)) {
    set_fail(x, FAIL_MEMORY);
    return 0;
  }
  return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
  ak_xfer *x = ud;
  size_t n = size * nmemb;
  const char *cr = memchr(p, '\r', n);
  if (n == 0)
    return 0;
  if (memchr(p, '\0', n) != NULL)
    return refuse(x, "NUL byte in a response header");
  if (cr != NULL && !(cr == p + n - 2 && p[n - 1] == '\n'))
    return refuse(x, "bare CR in a response header");
  if (starts_with_ci(p, n, "HTTP/")) {
    int code = status_code(p, n);
    if (code == 0)  /* libcurl 7.88.1 takes "HTTP/200 OK" for a status line (status 0) */
      return refuse(x, "malformed status line in the response");
    if (code == 101)  /* never asked for: the core sends no Upgrade */
      return refuse(x, "unsolicited 101 Switching Protocols in the response");
    x->head.len = 0;  /* a new response (after 1xx): keep only the last one's headers */
    x->bodiless = code < 200 || code == 204 || code == 304;
    x->has_length = 0;
    x->length_line = 0;
    x->in_headers = 1;
    x->got_response = 1;
    x->after_status = 1;
    return keep_header(x, p, n);
  } else if ((p[0] == ' ' || p[0] == '\t') && x->after_status) {
    /* RFC 9112 section 2.2: whitespace between the start line and the first field */
    return refuse(x, "folded line right after the status line in the response");
  } else if (p[0] == ' ' || p[0] == '\t') {
    /* A continuation of Content-Length ("2\r\n 3": the value "2 3") is not a length; libcurl
     * would frame the body by the first line alone */
    if (x->length_line && !blank(p, n))
      return refuse(x, "folded Content-Length in the response");
    x->after_status = 0;
    return keep_header(x, p, n);
  } else if (p[0] == '\r' || p[0] == '\n') {
    x->in_headers = 0;
  } else if (!field_name_ok(p, n)) {
    return refuse(x, "malformed header name in the response");
  } else if (x->in_headers && starts_with_ci(p, n, "content-length:")) {
    /* (in the head only: a trailer does not frame the body it follows) */
    if (!content_length(x, p, n))
      return 0;
    x->after_status = 0;
    x->length_line = 1;
    return keep_header(x, p, n);
  }
  x->after_status = 0;
  x->length_line = 0;
  return keep_header(x, p, n);
}

/* Called each time libcurl is about to send the request on a connection: once per request,
 * unless libcurl retries on its own (a reused connection that died, a refused HTTP/2 stream,
 * a 417): the retry is refused, so that only the client's policy ever repeats a request. */
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port,
                     int local_port)
{
  ak_xfer *x = ud;
  (void)remote_ip;
  (void)local_ip;
  (void)remote_port;
  (void)local_port;
  if (x->sends++ > 0) {
    set_fail(x, FAIL_RESEND);
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
  ak_xfer *x = ud;
  lua_State *L = x->loop ? x->loop->L : x->L;
  int rc;
  (void)ultotal;
  (void)ulnow;
  if (x->fail != FAIL_NONE || x->cancel_pending)
    return 1;
  if (L == NULL || (dlnow == x->last_now && dltotal == x->last_total))
    return 0;  /* not driven by us (libcurl ending a transfer being removed), or no news */
  x->last_now = dlnow;
  x->last_total = dltotal;
  /* Stack room was reserved by the driver; a Lua error is caught by lua_pcall, stashed, and
   * the transfer aborted: nothing unwinds through libcurl. */
  if (x->anchor != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->anchor);
    lua_rawgeti(L, -1, ANCHOR_PROGRESS);
  } else {
    lua_pushnil(L);
    lua_pushvalue(L, x->progress_idx);
  }
  lua_pushinteger(L, (lua_Integer)dlnow);
  if (dltotal > 0)
    lua_pushinteger(L, (lua_Integer)dltotal);
  else
    lua_pushnil(L);
  x->session->callbacks++;
  rc = lua_pcall(L, 2, 0, 0);
  x->session->callbacks--;
  if (rc != LUA_OK) {
    if (x->anchor != LUA_NOREF)
      lua_rawseti(L, -2, ANCHOR_ERROR);  /* an existing slot: no allocation */
    else
      lua_replace(L, x->error_idx);
    set_fail(x, FAIL_CALLBACK);
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/* The options every transfer of a session shares, set once on its template handle (the
 * callbacks' data pointers and the share handle are per transfer: session_easy). */
CURLcode xfer_template(CURL *e, const char *user_agent, const char *ca_file,
                       const char *ca_path, const char *proxy, long http_version)
{
  CURLcode rc = CURLE_OK;
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  /* InterviewMocha requires TLS 1.2 or later; so do we, whatever the system's OpenSSL allows. */
  SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_HTTP_VERSION, http_version);
  SET(CURLOPT_USERAGENT, user_agent);
  if (ca_file) SET(CURLOPT_CAINFO, ca_file);
  if (ca_path) SET(CURLOPT_CAPATH, ca_path);
  if (proxy) SET(CURLOPT_PROXY, proxy);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_PREREQFUNCTION, on_prereq);
  SET(CURLOPT_XFERINFOFUNCTION, on_progress);
#undef SET
  return rc;
}

/* ---- prepare: the request table into the transfer's easy handle ---- */

/* What the preparing steps share. `req` is the request table's stack index (also its
 * argument number in messages); `anchor` the anchor table's, or 0 for a blocking request. */
typedef struct {
  lua_State *L;
  ak_xfer *x;
  ak_session *s;
  int req, anchor;
  int https;
} prep;

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

/* 127.0.0.0/8, ::1 or localhost (the host as curl_url normalised it). Defence in depth: the
 * Lua clients decide first. */
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

/* Pushes the value of field `name` of the request table. */
static int field(prep *c, const char *name)
{
  lua_getfield(c->L, c->req, name);
  return lua_gettop(c->L);
}

/* The URL: parsed (misuse raises), and plain http refused unless allowed. Returns 0, or the
 * number of values of an "insecure" failure it pushed. */
static int prep_url(prep *c)
{
  lua_State *L = c->L;
  ak_xfer *x = c->x;
  char *scheme = NULL, *host = NULL;
  size_t ulen;
  int idx = field(c, "url"), insecure;
  const char *url;
  CURLUcode uc;
  if (lua_type(L, idx) != LUA_TSTRING)
    return ak_fielderror(L, c->req, "url", "string", idx);
  url = lua_tolstring(L, idx, &ulen);
  if (strlen(url) != ulen)  /* libcurl would read the URL only up to the NUL */
    return luaL_error(L, "bad argument #%d (field 'url' contains a NUL byte)", c->req);
  x->url = curl_url();
  if (x->url == NULL)
    return luaL_error(L, "out of memory");
  uc = curl_url_set(x->url, CURLUPART_URL, url, 0);
  if (uc != CURLUE_OK)
    return luaL_error(L, "bad argument #%d (field 'url': %s)", c->req, curl_url_strerror(uc));
  if (curl_url_get(x->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(x->url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    curl_free(scheme);
    curl_free(host);
    return luaL_error(L, "bad argument #%d (field 'url': no scheme or host)", c->req);
  }
  if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
    curl_free(scheme);
    curl_free(host);
    return luaL_error(L, "bad argument #%d (field 'url': http or https expected)", c->req);
  }
  insecure = strcmp(scheme, "http") == 0 && !c->s->allow_http && !is_loopback(host);
  c->https = strcmp(scheme, "https") == 0;
  curl_free(scheme);
  curl_free(host);
  lua_pop(L, 1);
  if (insecure)
    return session_failure(L, "plain http to a non-loopback host is refused "
                              "(use https, or allow_http = true)", "insecure");
  return 0;
}

/* Request headers (map name -> string or array of strings) into x->headers. */
static void prep_headers(prep *c, int idx)
{
  lua_State *L = c->L;
  if (lua_type(L, idx) != LUA_TTABLE)
    ak_fielderror(L, c->req, "headers", "table", idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t nlen, vlen, i, count;
    const char *name;
    int vt = lua_type(L, -1), isarray = vt == LUA_TTABLE;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad argument #%d (field 'headers': names must be strings)", c->req);
    name = lua_tolstring(L, -2, &nlen);
    if (!is_token(name, nlen))
      luaL_error(L, "bad argument #%d (header name '%s' is not a token)", c->req, name);
    if (!isarray && vt != LUA_TSTRING && vt != LUA_TNUMBER)
      luaL_error(L, "bad argument #%d (header '%s': string or array expected, got %s)", c->req,
                 name, luaL_typename(L, -1));
    count = isarray ? lua_rawlen(L, -1) : 1;
    for (i = 1; i <= count; i++) {
      const char *value;
      struct curl_slist *l;
      if (isarray) {
        lua_rawgeti(L, -1, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
          luaL_error(L, "bad argument #%d (header '%s'[%d]: string expected, got %s)", c->req,
                     name, (int)i, luaL_typename(L, -1));
      } else
        lua_pushvalue(L, -1);
      value = lua_tolstring(L, -1, &vlen);
      if (strlen(value) != vlen || strpbrk(value, "\r\n") != NULL)
        luaL_error(L, "bad argument #%d (header '%s': value contains CR, LF or NUL)", c->req,
                   name);
      /* "Name;" sends an empty header; "Name:" would delete it. */
      if (vlen == 0)
        lua_pushfstring(L, "%s;", name);
      else
        lua_pushfstring(L, "%s: %s", name, value);
      l = curl_slist_append(c->x->headers, lua_tostring(L, -1));
      if (l == NULL)
        luaL_error(L, "out of memory");
      c->x->headers = l;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
}

/* Reads optional string field `name` of the part table on top of the stack. */
static const char *part_string(prep *c, const char *name, size_t *len, int index)
{
  lua_State *L = c->L;
  const char *v = NULL;
  lua_getfield(L, -1, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad argument #%d (multipart[%d].%s: string expected, got %s)", c->req,
                 index, name, luaL_typename(L, -1));
    v = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1);  /* still referenced by the part table, itself anchored by req */
  return v;
}

/* One multipart part (the table on top of the stack) into x->mime. Returns 0, or 1 with an
 * "io" message pushed when its file cannot be read. */
static int prep_part(prep *c, int i)
{
  lua_State *L = c->L;
  size_t nlen = 0, vlen = 0, flen = 0, fnlen = 0, ctlen = 0;
  const char *name, *value, *file, *filename, *ctype;
  curl_mimepart *part;
  CURLcode rc;
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_error(L, "bad argument #%d (multipart[%d]: table expected, got %s)", c->req, i,
               luaL_typename(L, -1));
  name = part_string(c, "name", &nlen, i);
  value = part_string(c, "value", &vlen, i);
  file = part_string(c, "file", &flen, i);
  filename = part_string(c, "filename", &fnlen, i);
  ctype = part_string(c, "content_type", &ctlen, i);
  if (name == NULL)
    luaL_error(L, "bad argument #%d (multipart[%d].name is required)", c->req, i);
  if ((value == NULL) == (file == NULL))
    luaL_error(L, "bad argument #%d (multipart[%d] needs exactly one of value, file)", c->req,
               i);
  if (strlen(name) != nlen || (file && strlen(file) != flen) ||
      (filename && strlen(filename) != fnlen) || (ctype && strlen(ctype) != ctlen) ||
      strpbrk(name, "\r\n\"") != NULL || (filename && strpbrk(filename, "\r\n\"")) ||
      (ctype && strpbrk(ctype, "\r\n")))
    luaL_error(L, "bad argument #%d (multipart[%d]: NUL, CR, LF or quote in a name)", c->req,
               i);
  if (file != NULL) {
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
      lua_pushfstring(L, "cannot read multipart file '%s': %s", file, strerror(errno));
      return 1;
    }
    fclose(f);
  }
  part = curl_mime_addpart(c->x->mime);
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
    luaL_error(L, "multipart[%d]: %s", i, curl_easy_strerror(rc));
  return 0;
}

/* Builds x->mime from the multipart array at idx. Returns 0, or the number of values of an
 * "io" failure it pushed. */
static int prep_multipart(prep *c, int idx)
{
  lua_State *L = c->L;
  size_t count, i;
  if (lua_type(L, idx) != LUA_TTABLE)
    ak_fielderror(L, c->req, "multipart", "table", idx);
  c->x->mime = curl_mime_init(c->x->easy);
  if (c->x->mime == NULL)
    luaL_error(L, "out of memory");
  count = lua_rawlen(L, idx);
  for (i = 1; i <= count; i++) {
    lua_rawgeti(L, idx, (int)i);
    if (prep_part(c, (int)i))
      return session_failure(L, lua_tostring(L, -1), "io");
    lua_pop(L, 1);
  }
  return 0;
}

static void anchor_value(prep *c, int slot, int idx)
{
  if (c->anchor) {
    lua_pushvalue(c->L, idx);
    lua_rawseti(c->L, c->anchor, slot);
  }
}

/* Method, body or multipart, headers. Returns 0, or the number of failure values pushed. */
static int prep_method(prep *c)
{
  lua_State *L = c->L;
  ak_xfer *x = c->x;
  CURL *e = x->easy;
  int midx = field(c, "method"), bidx = field(c, "body"), pidx = field(c, "multipart"), hidx;
  int has_body = !lua_isnil(L, bidx), has_multipart = !lua_isnil(L, pidx);
  const char *method = "GET";
  size_t mlen;
  if (!lua_isnil(L, midx)) {
    if (lua_type(L, midx) != LUA_TSTRING)
      return ak_fielderror(L, c->req, "method", "string", midx);
    method = lua_tolstring(L, midx, &mlen);
    if (!is_token(method, mlen))
      return luaL_error(L, "bad argument #%d (field 'method' is not an HTTP method)", c->req);
  } else if (has_body || has_multipart)
    method = "POST";
  if (has_body && lua_type(L, bidx) != LUA_TSTRING)
    return ak_fielderror(L, c->req, "body", "string", bidx);
  if (has_body && has_multipart)
    return luaL_error(L, "bad argument #%d (body and multipart are mutually exclusive)",
                      c->req);
  hidx = field(c, "headers");
  if (!lua_isnil(L, hidx))
    prep_headers(c, hidx);
  if (has_multipart) {
    int n = prep_multipart(c, pidx);
    if (n)
      return n;
  }
  if (has_body) {
    size_t blen;
    const char *b = lua_tolstring(L, bidx, &blen);
    anchor_value(c, ANCHOR_BODY, bidx);  /* libcurl reads it while the transfer runs */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, b);
  } else if (has_multipart)
    curl_easy_setopt(e, CURLOPT_MIMEPOST, x->mime);
  else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    x->nobody = 1;
  } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
             strcmp(method, "PATCH") == 0) {
    /* an empty body: sends Content-Length: 0 */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
  }
  /* POST is what a body implies, GET and HEAD what none does; anything else is named. */
  if ((has_body || has_multipart) ? strcmp(method, "POST") != 0
                                  : (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
                                     strcmp(method, "POST") != 0))
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (x->headers)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
  return 0;
}

/* Optional non-negative seconds as milliseconds for libcurl (0 = no limit). */
static long opt_millis(prep *c, const char *name)
{
  lua_State *L = c->L;
  double t = 0;
  long ms = 0;
  int idx = field(c, name);
  if (!lua_isnil(L, idx)) {
    if (lua_type(L, idx) != LUA_TNUMBER)
      ak_fielderror(L, c->req, name, "number", idx);
    t = (double)lua_tonumber(L, idx);
    if (!(t >= 0))
      luaL_error(L, "bad argument #%d (field '%s' must be >= 0)", c->req, name);
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

static void prep_progress(prep *c)
{
  lua_State *L = c->L;
  int idx = field(c, "on_progress");
  if (lua_isnil(L, idx))
    return;
  if (lua_type(L, idx) != LUA_TFUNCTION)
    ak_fielderror(L, c->req, "on_progress", "function", idx);
  anchor_value(c, ANCHOR_PROGRESS, idx);
  c->x->progress_idx = idx;               /* blocking: stays on the stack ... */
  lua_pushnil(L);
  c->x->error_idx = lua_gettop(L);        /* ... beside a slot for its error */
  curl_easy_setopt(c->x->easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c->x->easy, CURLOPT_XFERINFODATA, c->x);
}

/* `output`: the body goes to that file. Returns 0, or the number of failure values pushed. */
static int prep_output(prep *c)
{
  lua_State *L = c->L;
  const char *path;
  size_t plen;
  int idx = field(c, "output");
  if (lua_isnil(L, idx))
    return 0;
  if (lua_type(L, idx) != LUA_TSTRING)
    return ak_fielderror(L, c->req, "output", "string", idx);
  path = lua_tolstring(L, idx, &plen);
  if (strlen(path) != plen)  /* fopen would write to the path cut short at the NUL */
    return luaL_error(L, "bad argument #%d (field 'output' contains a NUL byte)", c->req);
  c->x->out = fopen(path, "wb");
  if (c->x->out == NULL) {
    lua_pushfstring(L, "cannot open output '%s': %s", path, strerror(errno));
    return session_failure(L, lua_tostring(L, -1), "io");
  }
  c->x->buffering = 0;
  return 0;
}

/* Reads the request table at index `req` into the transfer: a fresh easy handle of session
 * `s` with everything set. Misuse raises (what was allocated is x's, freed by xfer_release).
 * `anchor` is the stack index of a loop transfer's anchor table (0 for a blocking request,
 * whose values stay on the stack). Returns 0 when the transfer is ready, or the number of
 * values of an immediate failure it pushed (nil, message, kind, false). */
int xfer_prepare(lua_State *L, ak_xfer *x, ak_session *s, int req, int anchor)
{
  prep c;
  int n;
  c.L = L;
  c.x = x;
  c.s = s;
  c.req = req;
  c.anchor = anchor;
  c.https = 0;
  x->session = s;
  luaL_checktype(L, req, LUA_TTABLE);
  x->max_response = s->max_response;
  if ((n = prep_url(&c)) != 0)
    return n;
  x->easy = session_easy(s, x);
  if (x->easy == NULL)
    return luaL_error(L, "out of memory");
  curl_easy_setopt(x->easy, CURLOPT_CURLU, x->url);
  /* Loop transfers to an HTTP/2 origin wait for the first connection to learn whether it
   * multiplexes, rather than each opening its own. */
  if (anchor && c.https && s->http_version == CURL_HTTP_VERSION_2TLS)
    curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L);
  if ((n = prep_method(&c)) != 0)
    return n;
  curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, opt_millis(&c, "timeout"));
  curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, opt_millis(&c, "connect_timeout"));
  prep_progress(&c);
  return prep_output(&c);
}

/* ---- the outcome ---- */

/* Takes what libcurl knows of the finished transfer (removed from its multi handle), closes
 * the output file and frees the easy handle. */
void xfer_collect(ak_xfer *x, CURLcode rc)
{
  x->rc = rc;
  if (x->easy) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &x->connects);
    curl_easy_getinfo(x->easy, CURLINFO_HEADER_SIZE, &x->header_size);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
  }
  if (x->out != NULL) {
    if (fclose(x->out) != 0 && x->fail == FAIL_NONE) {
      x->write_errno = errno;
      x->fail = FAIL_WRITE;
    }
    x->out = NULL;
  }
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
  case CURLE_OUT_OF_MEMORY:
    return "too_large";
  case CURLE_WRITE_ERROR:
  case CURLE_READ_ERROR:
    return "io";
  default:
    /* refused, reset, unresolvable, truncated, empty reply, HTTP/2 framing, proxy... */
    return "network";
  }
}

/* Adds one header to the table on top of the stack: a string, or an array once repeated. */
static void push_header(lua_State *L, const char *name, size_t nlen, const char *v, size_t vlen)
{
  lua_pushlstring(L, name, nlen);
  lua_pushvalue(L, -1);
  lua_rawget(L, -3);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushlstring(L, v, vlen);
    lua_rawset(L, -3);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    lua_createtable(L, 2, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v, vlen);
    lua_rawseti(L, -2, 2);
    lua_rawset(L, -3);
  } else {
    int n = (int)lua_rawlen(L, -1);
    lua_pushlstring(L, v, vlen);
    lua_rawseti(L, -2, n + 1);
    lua_pop(L, 2);
  }
}

/* Pushes the response headers (final response only) as a table: lower-case names, a
 * repeated header as an array in arrival order, obsolete folded lines joined with a space. */
static void push_headers(lua_State *L, ak_xfer *x)
{
  char *p = x->head.data, *end = p + x->head.len;
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
      push_header(L, p, (size_t)(name_end - p), v, (size_t)(vend - v));
    }
    p = eol + 1;
  }
}

/* Pushes a failure: nil, message, kind, sent. */
static int push_failure(lua_State *L, ak_xfer *x, const char *msg, const char *kind)
{
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, kind);
  lua_pushboolean(L, x->sends > 0);
  return 4;
}

/* A failure we decided (x->fail). */
static int push_our_failure(lua_State *L, ak_xfer *x)
{
  char msg[200];
  switch (x->fail) {
  case FAIL_CALLBACK:
    if (x->anchor != LUA_NOREF) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, x->anchor);
      lua_rawgeti(L, -1, ANCHOR_ERROR);
    } else {
      lua_pushnil(L);
      lua_pushvalue(L, x->error_idx);
    }
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      lua_pushfstring(L, "on_progress raised a %s value", luaL_typename(L, -1));
    else
      lua_pushvalue(L, -1);
    return push_failure(L, x, lua_tostring(L, -1), "aborted");
  case FAIL_WRITE:
    snprintf(msg, sizeof msg, "cannot write output: %s", strerror(x->write_errno));
    return push_failure(L, x, msg, "io");
  case FAIL_BODY_SIZE:
    if (x->announced)
      snprintf(msg, sizeof msg, "response body of %llu bytes announced, over "
               "max_response_size (%llu bytes)", x->announced,
               (unsigned long long)x->max_response);
    else
      snprintf(msg, sizeof msg, "response body larger than max_response_size (%llu bytes)",
               (unsigned long long)x->max_response);
    return push_failure(L, x, msg, "too_large");
  case FAIL_HEAD_SIZE:
    return push_failure(L, x, "response headers larger than 1 MiB", "too_large");
  case FAIL_MEMORY:
    return push_failure(L, x, "out of memory while receiving the response", "too_large");
  case FAIL_BAD_REPLY:
    return push_failure(L, x, x->bad_reply, "network");
  case FAIL_RESEND:
    return push_failure(L, x, x->got_response
      ? "the request would be sent again after a response; not sent again"
      : "connection closed before any response; not sent again", "network");
  case FAIL_CANCELLED:
    return push_failure(L, x, "cancelled", "aborted");
  default:
    return push_failure(L, x, "session is closed", "closed");
  }
}

/* Pushes the outcome of a finished transfer, exactly what session:request returns: status,
 * headers, body; or nil, message, kind, sent. */
int xfer_push_result(lua_State *L, ak_xfer *x)
{
  if (x->fail != FAIL_NONE)
    return push_our_failure(L, x);
  if (x->rc == CURLE_OUT_OF_MEMORY)
    return push_failure(L, x, x->in_headers
      ? "response header line longer than " CURL_MAX_HEADER_LINE
      : "out of memory while receiving the response", "too_large");
  if (x->rc == CURLE_BAD_FUNCTION_ARGUMENT && x->got_response && x->in_headers)
    /* libcurl 7.88.1's header store refuses a folded line with no header before it */
    return push_failure(L, x, "malformed response header: a folded line with no header "
                              "before it", "network");
  if (x->rc != CURLE_OK && x->header_size >= CURL_MAX_HEADERS)
    return push_failure(L, x, "response headers larger than 300 KiB", "too_large");
  if (x->rc != CURLE_OK)
    return push_failure(L, x, x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->rc),
                        error_kind(x->rc));
  if (x->in_headers)
    /* libcurl 7.88.1 takes a connection closed inside the headers for a response */
    return push_failure(L, x, "connection closed inside the response headers", "network");
  if (x->status < 100 || x->status > 999)  /* defence in depth: on_header refuses them */
    return push_failure(L, x, "malformed status line in the response", "network");
  lua_pushinteger(L, (lua_Integer)x->status);
  push_headers(L, x);
  if (x->buffering)
    lua_pushlstring(L, x->body.len ? x->body.data : "", x->body.len);
  else
    lua_pushinteger(L, (lua_Integer)x->written);
  return 3;
}
