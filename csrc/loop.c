/***
 * A non-blocking transfer driver over libcurl's multi interface: start any number of
 * requests (of any sessions), then drive them all with `loop:run`, which waits for socket
 * activity and returns the transfers that finished. A scheduler of coroutines sits on top
 * (`assesskit.scheduler`); this is only the native part.
 *
 * Each transfer is a fresh easy handle of its session (its options, size cap, caches and
 * connections: a blocking `session:request` and the loop's transfers of one session reuse
 * the same connections). Results are exactly those of `session:request`.
 *
 * Lifetimes: a running transfer is pinned (registry) and pins its session and request
 * values; `loop:close`, `session:close`, `x:cancel` or the collection of the loop end it.
 * Any of the three objects may be collected in any order (also by `lua_close`).
 * @submodule assesskit.core
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include "http.h"

#define LOOP_CLASS "assesskit.loop"
#define XFER_CLASS "assesskit.transfer"
#define MAX_CONNECTS 64L

static ak_loop *loop_check(lua_State *L)
{
  return luaL_checkudata(L, 1, LOOP_CLASS);
}

static ak_xfer *xfer_check(lua_State *L)
{
  return luaL_checkudata(L, 1, XFER_CLASS);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The loop's list of running transfers. */
static void loop_link(ak_loop *lp, ak_xfer *x)
{
  x->loop = lp;
  x->lprev = NULL;
  x->lnext = lp->xfers;
  if (lp->xfers)
    lp->xfers->lprev = x;
  lp->xfers = x;
  lp->count++;
}

static void loop_unlink(ak_xfer *x)
{
  ak_loop *lp = x->loop;
  if (x->lprev)
    x->lprev->lnext = x->lnext;
  else
    lp->xfers = x->lnext;
  if (x->lnext)
    x->lnext->lprev = x->lprev;
  x->lnext = x->lprev = NULL;
  x->loop = NULL;
  lp->count--;
}

/* Stores the result of a finished transfer as a table in the registry (x:result unpacks it),
 * so that its buffers are freed now and what it holds is Lua's to account for. */
static void store_result(lua_State *L, ak_xfer *x)
{
  int top = lua_gettop(L), n, i, base;
  luaL_checkstack(L, 12, "no room for a result");
  n = xfer_push_result(L, x);
  base = lua_gettop(L) - n;
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, base + i);
    lua_rawseti(L, -2, i);
  }
  x->result = luaL_ref(L, LUA_REGISTRYINDEX);
  x->nresult = n;
  lua_settop(L, top);
}

/* Ends a running transfer: out of its loop's multi handle, counted in its session's
 * statistics, unlinked from both; its result stored when `keep`; everything else freed. */
static void finish(lua_State *L, ak_xfer *x, CURLcode rc, int keep)
{
  curl_multi_remove_handle(x->loop->multi, x->easy);
  xfer_collect(x, rc);
  session_count(x);
  session_unlink(x);
  loop_unlink(x);
  x->state = XFER_DONE;
  if (keep)
    store_result(L, x);
  xfer_release(x, 0);
  luaL_unref(L, LUA_REGISTRYINDEX, x->anchor);
  luaL_unref(L, LUA_REGISTRYINDEX, x->self);
  x->anchor = x->self = LUA_NOREF;
}

/* Ends running transfer `x` now, as `fail` (FAIL_CANCELLED, FAIL_CLOSED); not while its loop
 * is being driven. One that never ran (its preparing raised) only gives its handles back. */
void loop_detach(lua_State *L, ak_xfer *x, int fail)
{
  if (x->state != XFER_RUNNING) {
    xfer_release(x, 0);
    session_unlink(x);
    return;
  }
  x->fail = fail;
  finish(L, x, CURLE_OK, 1);
}

/***
 * Create a transfer driver (a libcurl multi handle). Any number may exist; transfers of
 * several sessions may share one.
 * @function loop
 * @treturn loop
 * @usage local loop = core.loop()
 */
static int loop_new(lua_State *L)
{
  ak_loop *lp = lua_newuserdata(L, sizeof *lp);
  memset(lp, 0, sizeof *lp);
  luaL_setmetatable(L, LOOP_CLASS);
  lp->multi = curl_multi_init();
  if (lp->multi == NULL ||
      curl_multi_setopt(lp->multi, CURLMOPT_MAXCONNECTS, MAX_CONNECTS) != CURLM_OK)
    return luaL_error(L, "cannot create a loop: out of memory");
  return 1;
}

static void check_usable(lua_State *L, ak_loop *lp, const char *what)
{
  if (lp->multi == NULL)
    luaL_error(L, "loop is closed (%s)", what);
  if (lp->driving)
    luaL_error(L, "loop is busy (%s called from an on_progress of its transfers)", what);
}

/***
 * Start a request on the loop; it runs while `loop:run` drives it.
 * @function loop:start
 * @tparam session session whose options, caches and connections the transfer uses
 * @tparam table req exactly as `session:request` takes it; misuse raises as there
 * @treturn[1] transfer
 * @treturn[2] nil an immediate failure (insecure URL, unreadable multipart file, output that
 *   cannot be opened, closed session)
 * @treturn[2] string message
 * @treturn[2] string kind
 * @treturn[2] boolean sent (false)
 * @usage local x = assert(loop:start(s, { url = "https://example.com/" }))
 */
static int loop_start(lua_State *L)
{
  ak_loop *lp = loop_check(L);
  ak_session *s = session_check(L, 2);
  ak_xfer *x;
  int n, i;
  CURLMcode mc;
  check_usable(L, lp, "start");
  if (s->busy || s->callbacks)
    return luaL_error(L, "session is busy (loop:start called from one of its on_progress)");
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  if (s->tmpl == NULL)
    return session_failure(L, "session is closed", "closed");
  x = lua_newuserdata(L, sizeof *x);                    /* 4 */
  xfer_init(x);
  luaL_setmetatable(L, XFER_CLASS);
  /* Linked from now on: if preparing raises, the easy handle it made still belongs to the
   * session's share handle, and session:close must free it (or __gc will). */
  session_link(s, x);
  lua_createtable(L, ANCHOR_SLOTS, 0);                   /* 5: the anchor */
  lua_pushvalue(L, 2);
  lua_rawseti(L, 5, ANCHOR_SESSION);
  for (i = ANCHOR_SESSION + 1; i <= ANCHOR_SLOTS; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, 5, i);
  }
  n = xfer_prepare(L, x, s, 3, 5);
  if (n != 0) {
    xfer_release(x, 0);
    session_unlink(x);
    return n;
  }
  lua_pushvalue(L, 5);
  x->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 4);
  x->self = luaL_ref(L, LUA_REGISTRYINDEX);
  mc = curl_multi_add_handle(lp->multi, x->easy);
  if (mc != CURLM_OK) {
    xfer_release(x, 0);
    session_unlink(x);
    xfer_unref(L, x);
    return session_failure(L, curl_multi_strerror(mc), "network");
  }
  x->state = XFER_RUNNING;
  loop_link(lp, x);
  lua_settop(L, 4);
  return 1;
}

/* Ends the transfers libcurl reports done and those cancelled while the loop was driven,
 * appending each to the array at `done`. Returns how many. */
static int collect(lua_State *L, ak_loop *lp, int done)
{
  CURLMsg *m;
  ak_xfer *x, *next;
  int left, found = 0;
  while ((m = curl_multi_info_read(lp->multi, &left)) != NULL) {
    char *priv = NULL;
    CURLcode rc = m->data.result;
    if (m->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    x = (ak_xfer *)(void *)priv;
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->self);
    lua_rawseti(L, done, (int)lua_rawlen(L, done) + 1);
    finish(L, x, rc, 1);
    found++;
  }
  for (x = lp->xfers; x != NULL; x = next) {
    next = x->lnext;
    if (x->cancel_pending) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, x->self);
      lua_rawseti(L, done, (int)lua_rawlen(L, done) + 1);
      finish(L, x, CURLE_OK, 1);
      found++;
    }
  }
  return found;
}

/***
 * Drive every transfer of the loop: returns as soon as at least one finished, or after
 * `timeout` seconds, whichever comes first. With nothing running it waits `timeout`
 * seconds. `on_progress` callbacks run inside it (an error in one aborts its transfer).
 * @function loop:run
 * @tparam[opt=0] number timeout seconds to wait at most (0: do not wait)
 * @treturn table the transfers that finished during this call (possibly empty), including
 *   those cancelled during it
 * @usage while loop:count() > 0 do for _, x in ipairs(loop:run(1)) do print(x:result()) end end
 */
static int loop_run(lua_State *L)
{
  ak_loop *lp = loop_check(L);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  double deadline;
  int found = 0;
  check_usable(L, lp, "run");
  luaL_argcheck(L, timeout >= 0, 2, "timeout must be >= 0");
  lua_settop(L, 2);
  lua_newtable(L);                                       /* 3: finished transfers */
  luaL_checkstack(L, 16, "no room for on_progress");
  deadline = now() + (double)timeout;
  for (;;) {
    int running = 0, ms;
    double left;
    CURLMcode mc;
    lp->driving = 1;
    lp->L = L;
    mc = curl_multi_perform(lp->multi, &running);
    lp->driving = 0;
    lp->L = NULL;
    lua_settop(L, 3);
    found += collect(L, lp, 3);
    left = deadline - now();
    if (found > 0 || mc != CURLM_OK || left <= 0)
      break;
    ms = left * 1000.0 + 1 >= (double)INT_MAX ? INT_MAX : (int)(left * 1000.0 + 1);
    if (curl_multi_poll(lp->multi, NULL, 0, ms, NULL) != CURLM_OK)
      break;
  }
  return 1;
}

/***
 * Number of transfers running on the loop.
 * @function loop:count
 * @treturn integer
 */
static int loop_count(lua_State *L)
{
  lua_pushinteger(L, loop_check(L)->count);
  return 1;
}

/***
 * Close the loop: its running transfers end as cancelled (`nil, "cancelled", "aborted",
 * sent`). Idempotent; also `__gc` and `__close`.
 * @function loop:close
 */
static int loop_close(lua_State *L)
{
  ak_loop *lp = loop_check(L);
  if (lp->driving)
    return luaL_error(L, "loop is busy (close called from an on_progress of its transfers)");
  while (lp->xfers != NULL)
    loop_detach(L, lp->xfers, FAIL_CANCELLED);
  if (lp->multi) { curl_multi_cleanup(lp->multi); lp->multi = NULL; }
  return 0;
}

static int loop_tostring(lua_State *L)
{
  ak_loop *lp = loop_check(L);
  lua_pushfstring(L, LOOP_CLASS " (%s, %d running): %p", lp->multi ? "open" : "closed",
                  lp->count, (void *)lp);
  return 1;
}

/***
 * The result of a finished transfer: exactly what `session:request` returns. Before it
 * finished: `nil, "transfer is still running", "busy"`.
 * @function transfer:result
 * @treturn[1] integer status
 * @treturn[1] table headers
 * @treturn[1] string|integer body
 * @treturn[2] nil
 * @treturn[2] string message
 * @treturn[2] string kind (as `session:request`, plus `busy` while running)
 * @treturn[2] boolean sent
 */
static int xfer_result(lua_State *L)
{
  ak_xfer *x = xfer_check(L);
  int i;
  if (x->state != XFER_DONE || x->result == LUA_NOREF) {
    lua_pushnil(L);
    lua_pushliteral(L, "transfer is still running");
    lua_pushliteral(L, "busy");
    return 3;
  }
  luaL_checkstack(L, x->nresult + 1, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->result);
  for (i = 1; i <= x->nresult; i++)
    lua_rawgeti(L, 2, i);
  return x->nresult;
}

/***
 * Whether the transfer has finished (its result is ready).
 * @function transfer:done
 * @treturn boolean
 */
static int xfer_done(lua_State *L)
{
  lua_pushboolean(L, xfer_check(L)->state == XFER_DONE);
  return 1;
}

/***
 * Stop a running transfer: its result becomes `nil, "cancelled", "aborted", sent`. Called
 * from inside `loop:run` (an `on_progress`), the transfer ends when libcurl returns, and is
 * among what that `run` returns.
 * @function transfer:cancel
 * @treturn boolean true when it was running
 */
static int xfer_cancel(lua_State *L)
{
  ak_xfer *x = xfer_check(L);
  if (x->state != XFER_RUNNING) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (x->loop->driving) {
    x->cancel_pending = 1;  /* libcurl must not lose the handle from under its feet */
    x->fail = FAIL_CANCELLED;
  } else
    loop_detach(L, x, FAIL_CANCELLED);
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc: a running transfer is collected only with everything else (lua_close). */
static int xfer_gc(lua_State *L)
{
  ak_xfer *x = xfer_check(L);
  if (x->state == XFER_RUNNING) {
    x->fail = FAIL_CANCELLED;
    finish(L, x, CURLE_OK, 0);
  }
  xfer_release(x, 0);
  session_unlink(x);  /* one whose preparing raised */
  xfer_unref(L, x);
  return 0;
}

static int xfer_tostring(lua_State *L)
{
  ak_xfer *x = xfer_check(L);
  lua_pushfstring(L, XFER_CLASS " (%s): %p", x->state == XFER_RUNNING ? "running" : "done",
                  (void *)x);
  return 1;
}

static const luaL_Reg loop_methods[] = {
  {"start", loop_start},
  {"run", loop_run},
  {"count", loop_count},
  {"close", loop_close},
  {NULL, NULL}
};

static const luaL_Reg loop_meta[] = {
  {"__gc", loop_close},
  {"__close", loop_close},
  {"__tostring", loop_tostring},
  {NULL, NULL}
};

static const luaL_Reg xfer_methods[] = {
  {"result", xfer_result},
  {"done", xfer_done},
  {"cancel", xfer_cancel},
  {NULL, NULL}
};

static const luaL_Reg xfer_meta[] = {
  {"__gc", xfer_gc},
  {"__tostring", xfer_tostring},
  {NULL, NULL}
};

static const luaL_Reg loop_funcs[] = {
  {"loop", loop_new},
  {NULL, NULL}
};

void loop_open(lua_State *L)
{
  ak_newclass(L, LOOP_CLASS, loop_methods, loop_meta);
  ak_newclass(L, XFER_CLASS, xfer_methods, xfer_meta);
  luaL_setfuncs(L, loop_funcs, 0);
}
