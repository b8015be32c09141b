/***
 * HTTP sessions over libcurl. A session holds the options and the caches its requests share
 * (connections, DNS, TLS sessions: a share handle), so consecutive requests to a host reuse
 * one connection, whether they are blocking (`session:request`) or run on a `core.loop`.
 * Each request gets a fresh easy handle (see http.h for why).
 * @submodule assesskit.core
 */
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define DEFAULT_MAX_RESPONSE ((lua_Integer)64 * 1024 * 1024)
#define KEEP_BUFFER_BYTES ((size_t)64 * 1024)
/* Idle connections a session keeps (libcurl's default depends on how many transfers the
 * multi handle that ends a transfer has at that moment: 4 for a blocking request, which would
 * close the connections a loop opened). */
#define MAX_CONNECTS 64L

ak_session *session_check(lua_State *L, int idx)
{
  return luaL_checkudata(L, idx, SESSION_CLASS);
}

/* Pushes an immediate failure (nothing was sent): nil, message, kind, false. */
int session_failure(lua_State *L, const char *msg, const char *kind)
{
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, kind);
  lua_pushboolean(L, 0);
  return 4;
}

/* A fresh easy handle for transfer `x` of the session: the template's options, the session's
 * caches, and x as the callbacks' data. NULL when out of memory. */
CURL *session_easy(ak_session *s, ak_xfer *x)
{
  CURL *e = curl_easy_duphandle(s->tmpl);
  CURLcode rc = CURLE_OK;
  if (e == NULL)
    return NULL;
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
  SET(CURLOPT_SHARE, s->share);
  SET(CURLOPT_ERRORBUFFER, x->errbuf);
  SET(CURLOPT_WRITEDATA, x);
  SET(CURLOPT_HEADERDATA, x);
  SET(CURLOPT_PREREQDATA, x);
  SET(CURLOPT_PRIVATE, x);
#undef SET
  if (rc != CURLE_OK) {
    curl_easy_cleanup(e);
    return NULL;
  }
  return e;
}

/* The session's list of running loop transfers. */
void session_link(ak_session *s, ak_xfer *x)
{
  x->session = s;
  x->sprev = NULL;
  x->snext = s->xfers;
  if (s->xfers)
    s->xfers->sprev = x;
  s->xfers = x;
}

void session_unlink(ak_xfer *x)
{
  ak_session *s = x->session;
  if (s == NULL)
    return;
  if (x->sprev)
    x->sprev->snext = x->snext;
  else if (s->xfers == x)
    s->xfers = x->snext;
  if (x->snext)
    x->snext->sprev = x->sprev;
  x->snext = x->sprev = NULL;
  x->session = NULL;
}

/* Adds a finished transfer to its session's statistics. */
void session_count(ak_xfer *x)
{
  if (x->session) {
    x->session->requests++;
    x->session->connects += x->connects;
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

static size_t opt_size(lua_State *L, int idx, const char *name, lua_Integer dflt)
{
  lua_Integer v = dflt;
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      ak_fielderror(L, idx, name, "number", -1);
    v = lua_tointeger(L, -1);
    if (v < 0 || (lua_Number)v != lua_tonumber(L, -1))
      luaL_error(L, "bad argument #%d (%s must be an integer >= 0)", idx, name);
  }
  lua_pop(L, 1);
  return (size_t)v;
}

/* The handles a session owns: the share (connections, DNS, TLS sessions), the multi handle of
 * its blocking requests and the template every request's easy handle is copied from. */
static int session_handles(ak_session *s)
{
  CURLSHcode sc = CURLSHE_OK;
  s->share = curl_share_init();
  if (s->share == NULL)
    return 0;
  sc = curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  if (sc == CURLSHE_OK)
    sc = curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  if (sc == CURLSHE_OK)
    sc = curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  s->multi = curl_multi_init();
  if (sc != CURLSHE_OK || s->multi == NULL ||
      curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, MAX_CONNECTS) != CURLM_OK)
    return 0;
  s->tmpl = curl_easy_init();
  return s->tmpl != NULL && xfer_template(s->tmpl, s->user_agent, s->ca_file, s->ca_path,
                                          s->proxy, s->http_version) == CURLE_OK;
}

static void session_free(ak_session *s)
{
  xfer_release(&s->req, 0);
  if (s->tmpl) { curl_easy_cleanup(s->tmpl); s->tmpl = NULL; }
  if (s->multi) { curl_multi_cleanup(s->multi); s->multi = NULL; }
  /* Closes the cached connections; every easy handle that used the share is gone (else
   * libcurl refuses, and the share would leak: make sanitize's leak check would say). */
  if (s->share) { curl_share_cleanup(s->share); s->share = NULL; }
  free(s->ca_file); s->ca_file = NULL;
  free(s->ca_path); s->ca_path = NULL;
  free(s->proxy); s->proxy = NULL;
  free(s->user_agent); s->user_agent = NULL;
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
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  ak_checkoptions(L, 1, known);
  /* Created closed, then filled: a raise below leaves a handle __gc can free. */
  s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  xfer_init(&s->req);
  luaL_setmetatable(L, SESSION_CLASS);
  opt_string(L, 1, "ca_file", &s->ca_file);
  opt_string(L, 1, "ca_path", &s->ca_path);
  opt_string(L, 1, "proxy", &s->proxy);
  opt_string(L, 1, "user_agent", &s->user_agent);
  if (s->user_agent == NULL) {
    const char *ua = lua_pushfstring(L, "assesskit/%s libcurl/%s", ak_version(L),
                                     info->version);
    s->user_agent = malloc(strlen(ua) + 1);
    if (s->user_agent == NULL)
      return luaL_error(L, "out of memory");
    strcpy(s->user_agent, ua);
    lua_pop(L, 1);
  }
  s->max_response = opt_size(L, 1, "max_response_size", DEFAULT_MAX_RESPONSE);
  s->http_version = opt_boolean(L, 1, "http2", 1) && (info->features & CURL_VERSION_HTTP2)
                      ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1;
  s->allow_http = opt_boolean(L, 1, "allow_http", 0);
  if (!session_handles(s)) {
    session_free(s);
    return luaL_error(L, "cannot create an HTTP session: out of memory");
  }
  return 1;
}

/* Runs the blocking request's easy handle to its end on the session's multi handle (what
 * curl_easy_perform does, without a multi handle per easy handle). */
static void session_perform(lua_State *L, ak_session *s, ak_xfer *x)
{
  CURLMcode mc;
  CURLcode rc = CURLE_OK;
  int running = 1, top = lua_gettop(L);
  CURLMsg *m;
  /* Room for the callback's pushes, reserved now so that nothing in the callback raises. */
  luaL_checkstack(L, 8, "no room for on_progress");
  x->L = L;
  s->busy = 1;
  mc = curl_multi_add_handle(s->multi, x->easy);
  while (mc == CURLM_OK) {
    mc = curl_multi_perform(s->multi, &running);
    if (mc != CURLM_OK || running == 0)
      break;
    mc = curl_multi_poll(s->multi, NULL, 0, 1000, NULL);
  }
  while ((m = curl_multi_info_read(s->multi, &running)) != NULL)
    if (m->msg == CURLMSG_DONE && m->easy_handle == x->easy)
      rc = m->data.result;
  if (mc != CURLM_OK) {
    rc = CURLE_RECV_ERROR;
    snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_multi_strerror(mc));
  }
  curl_multi_remove_handle(s->multi, x->easy);
  s->busy = 0;
  x->L = NULL;
  lua_settop(L, top);
  xfer_collect(x, rc);
}

/***
 * Perform one HTTP request, blocking until it ends.
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
 * @treturn[2] boolean sent: false when no byte of the request can have reached the server
 *   (refused, unresolvable, TLS handshake, insecure, io before sending, closed), true when
 *   the request, or part of it, may have been written
 * @usage local status, headers, body = s:request{ url = "https://example.com/" }
 */
static int session_request(lua_State *L)
{
  ak_session *s = session_check(L, 1);
  ak_xfer *x = &s->req;
  int n;
  if (s->tmpl == NULL)
    return session_failure(L, "session is closed", "closed");
  if (s->busy || s->callbacks)
    return luaL_error(L, "session is busy (request called from one of its on_progress)");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  xfer_release(x, KEEP_BUFFER_BYTES);  /* what a raise in an earlier request left */
  n = xfer_prepare(L, x, s, 2, 0);
  if (n == 0) {
    session_perform(L, s, x);
    session_count(x);
    n = xfer_push_result(L, x);
  }
  /* Release the request's buffers now, whatever the outcome: a failed transfer may hold up to
   * max_response_size bytes, which an idle session would otherwise keep until its next
   * request. */
  xfer_release(x, KEEP_BUFFER_BYTES);
  return n;
}

/***
 * Counters for tests and diagnostics, blocking requests and loop transfers alike.
 * @function session:stats
 * @treturn table `{requests=, connects=}`: requests ended, new connections opened
 */
static int session_stats(lua_State *L)
{
  ak_session *s = session_check(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, s->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, s->connects);
  lua_setfield(L, -2, "connects");
  return 1;
}

/***
 * Close the session and its connections. Idempotent; also `__gc` and `__close`. Its
 * transfers still running on loops end with kind `closed`. Raises when called from an
 * `on_progress` of one of its transfers.
 * @function session:close
 */
static int session_close(lua_State *L)
{
  ak_session *s = session_check(L, 1);
  ak_xfer *x;
  if (s->busy || s->callbacks)
    return luaL_error(L, "session is busy (close called from one of its on_progress)");
  for (x = s->xfers; x != NULL; x = x->snext)
    if (x->loop && x->loop->driving)
      return luaL_error(L, "session is busy (close called while loop:run drives one of its "
                           "transfers)");
  while (s->xfers != NULL)
    loop_detach(L, s->xfers, FAIL_CLOSED);
  session_free(s);
  return 0;
}

/***
 * Whether the session is closed.
 * @function session:is_closed
 * @treturn boolean
 */
static int session_is_closed(lua_State *L)
{
  lua_pushboolean(L, session_check(L, 1)->tmpl == NULL);
  return 1;
}

static int session_tostring(lua_State *L)
{
  ak_session *s = session_check(L, 1);
  lua_pushfstring(L, SESSION_CLASS " (%s): %p", s->tmpl ? "open" : "closed", (void *)s);
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
  loop_open(L);
}
