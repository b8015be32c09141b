/***
 * Redis connections over libhiredis (Debian's 0.14), for `assesskit.redis` outside nginx.
 *
 * hiredis connects and parses (its reply reader); the core does the socket I/O itself so that
 * every call has one deadline (`timeout` for the whole command or pipeline, whatever the
 * server trickles), a write to a closed connection never raises SIGPIPE (`MSG_NOSIGNAL`), and
 * what one call may receive is capped (`max_reply_size`). Replies are converted without
 * raising on anything the server sends:
 *
 * * a bulk or status string: a Lua string; an integer: a number; a nil bulk or nil array:
 *   `false`; an array: a Lua array (its nils `false`, so it has no holes);
 * * an error reply: `nil, message, "redis"` for `command` (the connection stays usable);
 *   inside an array or as one of a pipeline's replies: a table `{err = message}`.
 *
 * A failure of the connection itself (`network`, `timeout`, `protocol`, `too_large`) closes
 * it: the stream is no longer in step with the server. Later calls return
 * `nil, "connection is closed", "closed"`.
 * @submodule assesskit.core
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include "core.h"

#define REDIS_CLASS "assesskit.redis_connection"
#define DEFAULT_TIMEOUT 1.0
#define DEFAULT_MAX_REPLY (64.0 * 1024 * 1024)
#define READ_CHUNK 16384
/* Arguments of one command: a Lua call has fewer anyway (LUAI_MAXCCALLS / C stack). */
#define MAX_ARGS 100000

typedef struct {
  redisContext *ctx;   /* NULL once closed */
  double timeout;      /* seconds, for a whole call */
  size_t max_reply;    /* bytes one call may receive */
  redisReply *pending; /* a reply being converted: freed by the next call or by close */
  char *cmd;           /* a formatted command being copied: idem */
  sds out;             /* what the call sends: idem */
} ak_redis;

typedef struct {
  const char *msg;
  const char *kind;
  char buf[160];
} failure;

static double now_mono(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drop_pending(ak_redis *r)
{
  if (r->pending != NULL) {
    freeReplyObject(r->pending);
    r->pending = NULL;
  }
  if (r->cmd != NULL) {
    redisFreeCommand(r->cmd);
    r->cmd = NULL;
  }
  if (r->out != NULL) {
    sdsfree(r->out);
    r->out = NULL;
  }
}

static void conn_free(ak_redis *r)
{
  drop_pending(r);
  if (r->ctx != NULL) {
    redisFree(r->ctx);
    r->ctx = NULL;
  }
}

static int fail_push(lua_State *L, const char *msg, const char *kind)
{
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, kind);
  return 3;
}

/* A failure of the connection: it is closed (its stream is out of step) and reported. */
static int conn_fail(lua_State *L, ak_redis *r, failure *f)
{
  conn_free(r);
  return fail_push(L, f->msg, f->kind);
}

static void set_failure(failure *f, const char *kind, const char *fmt, const char *detail)
{
  snprintf(f->buf, sizeof f->buf, fmt, detail);
  f->msg = f->buf;
  f->kind = kind;
}

static int is_timeout_errno(int e)
{
  return e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT || e == EINPROGRESS;
}

/* Waits until fd is ready for `events` or the deadline passes: 1 ready, 0 timeout, -1 error
 * (errno set). */
static int wait_fd(int fd, short events, double deadline)
{
  for (;;) {
    struct pollfd p;
    double left = deadline - now_mono();
    int ms, rc;
    if (left <= 0)
      return 0;
    ms = left > 2e6 ? 2000000000 : (int)(left * 1000.0) + 1;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    rc = poll(&p, 1, ms);
    if (rc > 0)
      return 1; /* POLLERR/POLLHUP: the read or write that follows tells what */
    if (rc == 0)
      continue; /* the loop re-checks the deadline */
    if (errno != EINTR)
      return -1;
  }
}

static int send_all(ak_redis *r, const char *buf, size_t len, double deadline, failure *f)
{
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(r->ctx->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(r->ctx->fd, POLLOUT, deadline);
      if (w == 0) {
        set_failure(f, "timeout", "Redis write timed out%s", "");
        return 0;
      }
      if (w < 0) {
        set_failure(f, "network", "Redis write failed: %s", strerror(errno));
        return 0;
      }
      continue;
    }
    set_failure(f, "network", "Redis write failed: %s", n < 0 ? strerror(errno) : "nothing written");
    return 0;
  }
  return 1;
}

/* Reads one reply into r->pending (freed by the caller once converted). */
static int read_reply(ak_redis *r, double deadline, size_t *received, failure *f)
{
  char buf[READ_CHUNK];
  for (;;) {
    void *reply = NULL;
    ssize_t n;
    int w;
    if (redisReaderGetReply(r->ctx->reader, &reply) != REDIS_OK) {
      set_failure(f, "protocol", "Redis protocol error: %s", r->ctx->reader->errstr);
      return 0;
    }
    if (reply != NULL) {
      r->pending = reply;
      return 1;
    }
    w = wait_fd(r->ctx->fd, POLLIN, deadline);
    if (w == 0) {
      set_failure(f, "timeout", "Redis read timed out%s", "");
      return 0;
    }
    if (w < 0) {
      set_failure(f, "network", "Redis read failed: %s", strerror(errno));
      return 0;
    }
    n = recv(r->ctx->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      set_failure(f, "network", "Redis closed the connection%s", "");
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      set_failure(f, "network", "Redis read failed: %s", strerror(errno));
      return 0;
    }
    *received += (size_t)n;
    if (*received > r->max_reply) {
      set_failure(f, "too_large", "Redis reply over max_reply_size%s", "");
      return 0;
    }
    if (redisReaderFeed(r->ctx->reader, buf, (size_t)n) != REDIS_OK) {
      set_failure(f, "protocol", "Redis protocol error: %s", r->ctx->reader->errstr);
      return 0;
    }
  }
}

/* Pushes a reply as described in the module doc; `top` for the top level of `command`. */
static void push_reply(lua_State *L, const redisReply *rep)
{
  size_t i;
  luaL_checkstack(L, 4, "Redis reply nested too deep");
  switch (rep->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, rep->str != NULL ? rep->str : "", rep->str != NULL ? rep->len : 0);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushnumber(L, (lua_Number)rep->integer);
    if (rep->integer == (long long)(lua_Integer)rep->integer) {
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)rep->integer);
    }
    break;
  case REDIS_REPLY_ARRAY:
    lua_createtable(L, rep->elements > 0x7fffffff ? 0 : (int)rep->elements, 0);
    for (i = 0; i < rep->elements; i++) {
      push_reply(L, rep->element[i]);
      lua_rawseti(L, -2, (int)(i + 1));
    }
    break;
  case REDIS_REPLY_ERROR:
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, rep->str != NULL ? rep->str : "", rep->str != NULL ? rep->len : 0);
    lua_setfield(L, -2, "err");
    break;
  default: /* REDIS_REPLY_NIL, and anything a later hiredis might add */
    lua_pushboolean(L, 0);
    break;
  }
}

static ak_redis *conn_check(lua_State *L)
{
  return luaL_checkudata(L, 1, REDIS_CLASS);
}

static double opt_number_field(lua_State *L, int t, const char *name, double dflt)
{
  double v;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  if (lua_type(L, -1) != LUA_TNUMBER)
    ak_fielderror(L, t, name, "number", -1);
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/***
 * Connect to a Redis server over TCP.
 * @function redis_connect
 * @tparam table opts `host` (required), `port` (default 6379), `timeout` (seconds, default 1:
 *   the connect, and then each whole command or pipeline), `max_reply_size` (bytes one call
 *   may receive, default 64 MiB)
 * @treturn[1] userdata the connection
 * @treturn[2] nil
 * @treturn[2] string the reason
 * @treturn[2] string the kind: `network` or `timeout`
 * @usage local c = assert(core.redis_connect{ host = "127.0.0.1", port = 6379 })
 * print(c:command("PING"))   --> PONG
 */
static int redis_connect(lua_State *L)
{
  const char *host;
  double port, timeout, max_reply;
  struct timeval tv;
  ak_redis *r;
  redisContext *ctx;
  static const char *const known[] = {"host", "port", "timeout", "max_reply_size", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  ak_checkoptions(L, 1, known);
  lua_getfield(L, 1, "host");
  if (lua_type(L, -1) != LUA_TSTRING)
    return ak_fielderror(L, 1, "host", "string", -1);
  host = lua_tostring(L, -1); /* stays on the stack */
  luaL_argcheck(L, strlen(host) == lua_rawlen(L, -1) && host[0] != '\0', 1, "bad host");
  port = opt_number_field(L, 1, "port", 6379);
  timeout = opt_number_field(L, 1, "timeout", DEFAULT_TIMEOUT);
  max_reply = opt_number_field(L, 1, "max_reply_size", DEFAULT_MAX_REPLY);
  luaL_argcheck(L, port >= 1 && port <= 65535 && port == (int)port, 1, "port out of range");
  luaL_argcheck(L, timeout > 0 && timeout <= 1e6, 1, "timeout must be > 0 seconds");
  luaL_argcheck(L, max_reply >= 1 && max_reply <= 1e15, 1, "max_reply_size out of range");

  r = lua_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, REDIS_CLASS);
  r->timeout = timeout;
  r->max_reply = (size_t)max_reply;

  tv.tv_sec = (time_t)timeout;
  tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
  errno = 0;
  ctx = redisConnectWithTimeout(host, (int)port, tv);
  if (ctx == NULL)
    return fail_push(L, "cannot connect to Redis: out of memory", "network");
  if (ctx->err) {
    int e = errno;
    const char *kind = (is_timeout_errno(e) || strstr(ctx->errstr, "timed out") != NULL)
                         ? "timeout" : "network";
    lua_pushnil(L);
    lua_pushfstring(L, "cannot connect to Redis at %s:%d: %s", host, (int)port, ctx->errstr);
    lua_pushstring(L, kind);
    redisFree(ctx);
    return 3;
  }
  r->ctx = ctx;
  (void)redisEnableKeepAlive(ctx);
  return 1;
}

/* Appends the RESP form of the command made of the values at idx, idx+1, ... (n values) to
 * r->out. Strings are sent as they are; numbers as integers when they are whole, else with 17
 * significant digits. Anything else raises, naming argument `argbase + i` (argbase: the
 * number the caller sees for the first value). */
static void add_command(lua_State *L, ak_redis *r, int idx, int n, int argbase, const char *what)
{
  const char **argv;
  size_t *lens;
  char *numbuf;
  sds grown;
  int i, len;
  if (n < 1 || n > MAX_ARGS)
    luaL_error(L, "bad argument #%d to '%s' (%s)", argbase, what,
               n < 1 ? "a command needs at least its name" : "too many arguments");
  argv = lua_newuserdata(L, sizeof *argv * (size_t)n);
  lens = lua_newuserdata(L, sizeof *lens * (size_t)n);
  numbuf = lua_newuserdata(L, (size_t)n * 32);
  for (i = 0; i < n; i++) {
    int t = lua_type(L, idx + i);
    if (t == LUA_TSTRING) {
      argv[i] = lua_tolstring(L, idx + i, &lens[i]);
    } else if (t == LUA_TNUMBER) {
      double d = lua_tonumber(L, idx + i);
      char *nb = numbuf + (size_t)i * 32;
      if (d == d && d >= -9.2e18 && d <= 9.2e18 && d == (double)(long long)d)
        snprintf(nb, 32, "%lld", (long long)d);
      else
        snprintf(nb, 32, "%.17g", d);
      argv[i] = nb;
      lens[i] = strlen(nb);
    } else {
      luaL_error(L, "bad argument #%d to '%s' (string or number expected, got %s)",
                 argbase + i, what, luaL_typename(L, idx + i));
    }
  }
  if (r->out == NULL && (r->out = sdsempty()) == NULL)
    luaL_error(L, "%s: out of memory", what);
  len = redisFormatCommandArgv(&r->cmd, n, argv, lens);
  if (len < 0 || r->cmd == NULL) {
    r->cmd = NULL;
    luaL_error(L, "%s: out of memory", what);
  }
  grown = sdscatlen(r->out, r->cmd, (size_t)len);
  redisFreeCommand(r->cmd);
  r->cmd = NULL;
  if (grown == NULL)
    luaL_error(L, "%s: out of memory", what);
  r->out = grown;
  lua_pop(L, 3);
}

/***
 * Send one command and read its reply.
 * @function conn:command
 * @param ... the command and its arguments (strings or numbers)
 * @return[1] the reply (see the module doc: string, integer, `false` for nil, array)
 * @treturn[2] nil
 * @treturn[2] string the reason (an error reply's text, or what failed)
 * @treturn[2] string the kind: `redis` (an error reply), `network`, `timeout`, `protocol`,
 *   `too_large`, `closed`
 * @usage c:command("SET", "k", "v", "PX", 500)
 */
static int conn_command(lua_State *L)
{
  ak_redis *r = conn_check(L);
  int n = lua_gettop(L) - 1;
  failure f;
  size_t received = 0;
  double deadline;
  drop_pending(r);
  add_command(L, r, 2, n, 1, "command"); /* misuse raises even on a closed connection */
  if (r->ctx == NULL) {
    drop_pending(r);
    return fail_push(L, "connection is closed", "closed");
  }
  deadline = now_mono() + r->timeout;
  if (!send_all(r, r->out, sdslen(r->out), deadline, &f))
    return conn_fail(L, r, &f);
  drop_pending(r);
  if (!read_reply(r, deadline, &received, &f))
    return conn_fail(L, r, &f);
  if (r->pending->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, r->pending->str, r->pending->len);
    lua_pushliteral(L, "redis");
    drop_pending(r);
    return 3;
  }
  push_reply(L, r->pending);
  drop_pending(r);
  return 1;
}

/***
 * Send several commands at once and read all their replies (one round trip).
 * @function conn:pipeline
 * @tparam table commands an array of commands, each an array `{name, arg, ...}`
 * @treturn[1] table the replies in order; an error reply is `{err = message}` there
 * @treturn[2] nil
 * @treturn[2] string the reason
 * @treturn[2] string the kind: `network`, `timeout`, `protocol`, `too_large`, `closed`
 * @usage local res = c:pipeline{ {"INCR", "a"}, {"GET", "b"} }
 */
static int conn_pipeline(lua_State *L)
{
  ak_redis *r = conn_check(L);
  int n, i;
  failure f;
  size_t received = 0;
  double deadline;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (int)lua_rawlen(L, 2);
  luaL_argcheck(L, n >= 1, 2, "no command");
  luaL_argcheck(L, n <= MAX_ARGS, 2, "too many commands");
  drop_pending(r);
  /* Check every command before anything is sent (misuse raises, even on a closed one). */
  for (i = 1; i <= n; i++) {
    int len, j;
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TTABLE)
      return luaL_error(L, "bad argument #2 to 'pipeline' (command %d: table expected, got %s)",
                        i, luaL_typename(L, -1));
    len = (int)lua_rawlen(L, -1);
    if (len < 1)
      return luaL_error(L, "bad argument #2 to 'pipeline' (command %d is empty)", i);
    for (j = 1; j <= len; j++) {
      int t;
      lua_rawgeti(L, -1, j);
      t = lua_type(L, -1);
      if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_error(L, "bad argument #2 to 'pipeline' (command %d, item %d: string or "
                          "number expected, got %s)", i, j, luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (r->ctx == NULL)
    return fail_push(L, "connection is closed", "closed");
  for (i = 1; i <= n; i++) {
    int len, j;
    lua_rawgeti(L, 2, i);
    len = (int)lua_rawlen(L, -1);
    luaL_checkstack(L, len + 8, "too many arguments");
    for (j = 1; j <= len; j++)
      lua_rawgeti(L, -j, j);
    add_command(L, r, lua_gettop(L) - len + 1, len, 2, "pipeline");
    lua_pop(L, len + 1);
  }
  deadline = now_mono() + r->timeout;
  if (!send_all(r, r->out, sdslen(r->out), deadline, &f))
    return conn_fail(L, r, &f);
  drop_pending(r);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    if (!read_reply(r, deadline, &received, &f))
      return conn_fail(L, r, &f);
    push_reply(L, r->pending);
    drop_pending(r);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

/***
 * Close the connection. Idempotent; also `__gc` and `__close`.
 * @function conn:close
 */
static int conn_close(lua_State *L)
{
  ak_redis *r = conn_check(L);
  conn_free(r);
  return 0;
}

/***
 * Whether the connection is closed (by `close`, or by a failure).
 * @function conn:is_closed
 * @treturn boolean
 */
static int conn_is_closed(lua_State *L)
{
  ak_redis *r = conn_check(L);
  lua_pushboolean(L, r->ctx == NULL);
  return 1;
}

static int conn_tostring(lua_State *L)
{
  ak_redis *r = conn_check(L);
  if (r->ctx == NULL)
    lua_pushliteral(L, "assesskit.redis_connection (closed)");
  else
    lua_pushfstring(L, "assesskit.redis_connection (%s:%d)",
                    r->ctx->tcp.host != NULL ? r->ctx->tcp.host : "?", r->ctx->tcp.port);
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"command", conn_command},
  {"pipeline", conn_pipeline},
  {"close", conn_close},
  {"is_closed", conn_is_closed},
  {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
  {"__gc", conn_close},
  {"__close", conn_close},
  {"__tostring", conn_tostring},
  {NULL, NULL}
};

static const luaL_Reg redis_funcs[] = {
  {"redis_connect", redis_connect},
  {NULL, NULL}
};

void redis_open(lua_State *L)
{
  ak_newclass(L, REDIS_CLASS, conn_methods, conn_meta);
  luaL_setfuncs(L, redis_funcs, 0);
}
