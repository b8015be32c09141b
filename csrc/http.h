/*
 * http.h: what the HTTP files of assesskit.core share.
 *
 *   http.c  the session: options, the caches its transfers share, blocking requests
 *   xfer.c  one transfer: the request table into a fresh easy handle, libcurl's callbacks,
 *           the result
 *   loop.c  the non-blocking transfer driver (a multi handle) and its transfer objects
 *
 * Every request gets a fresh easy handle (libcurl 7.88.1 keeps a pointer to the previous
 * transfer's last header in a reused handle: a folded first header line then writes into
 * freed memory). What outlives a request lives in the session's share handle: connections,
 * DNS and TLS session caches. Blocking requests are driven by a multi handle the session owns
 * (curl_easy_perform would build and destroy a multi handle per fresh easy handle); loop
 * transfers by their loop's multi handle. Both find the session's connections in the share.
 */
#ifndef ASSESSKIT_HTTP_H
#define ASSESSKIT_HTTP_H

#include <stdio.h>

#include <curl/curl.h>

#include "util.h"

#define SESSION_CLASS "assesskit.session"

typedef struct ak_session ak_session;
typedef struct ak_loop ak_loop;
typedef struct ak_xfer ak_xfer;

/* A growable buffer (luaL_Buffer cannot live across libcurl callbacks). */
typedef struct {
  char *data;
  size_t len, cap;
} ak_buf;

/* Why a transfer failed, when it is our decision rather than libcurl's CURLcode. The first
 * one set wins. */
enum {
  FAIL_NONE = 0,
  FAIL_CALLBACK,      /* on_progress raised: aborted */
  FAIL_WRITE,         /* the output file cannot be written: io */
  FAIL_BODY_SIZE,     /* body over max_response_size: too_large */
  FAIL_HEAD_SIZE,     /* headers over our cap: too_large */
  FAIL_MEMORY,        /* out of memory in a buffer: too_large */
  FAIL_BAD_REPLY,     /* a response the core refuses (x->bad_reply says why): network */
  FAIL_RESEND,        /* libcurl was about to send the request again: network */
  FAIL_CANCELLED,     /* cancel(): aborted */
  FAIL_CLOSED         /* its session was closed: closed */
};

enum { XFER_IDLE = 0, XFER_RUNNING, XFER_DONE };

/* Slots of a loop transfer's anchor table (registry): what must live as long as it runs. */
enum { ANCHOR_SESSION = 1, ANCHOR_PROGRESS, ANCHOR_BODY, ANCHOR_ERROR, ANCHOR_SLOTS = 4 };

struct ak_xfer {
  CURL *easy;                 /* from prepare until finished */
  ak_session *session;        /* while running */
  ak_loop *loop;              /* while running on a loop (NULL: a blocking request) */
  ak_xfer *snext, *sprev;     /* the session's loop transfers (session->xfers) */
  ak_xfer *lnext, *lprev;     /* the loop's running transfers */
  int state;                  /* XFER_* */
  /* the request */
  CURLU *url;
  struct curl_slist *headers;
  curl_mime *mime;
  FILE *out;
  size_t max_response;
  int buffering;              /* the body is held in memory (no output file) */
  int nobody;                 /* HEAD */
  /* the response */
  ak_buf body, head;
  size_t written;
  int bodiless;               /* the current response is 1xx, 204 or 304 */
  int in_headers;             /* a header block is being received */
  int got_response;           /* any status line arrived */
  int after_status;           /* the last line was a status line */
  unsigned long long length;  /* Content-Length of the current response ... */
  int has_length;             /* ... when it has one */
  int length_line;            /* the last header line was Content-Length (a fold continues it) */
  unsigned long long announced;  /* Content-Length over the cap, or 0 */
  int fail;                   /* FAIL_* */
  int write_errno;
  const char *bad_reply;      /* static text, with FAIL_BAD_REPLY */
  int sends;                  /* times libcurl was about to send the request */
  int cancel_pending;         /* cancel() during loop:run: finished once libcurl returns */
  /* Lua: a blocking request keeps its values on the caller's stack, a loop transfer in
   * registry references (anchor: ANCHOR_* slots; self: pins the transfer while it runs;
   * result: its packed result once finished) */
  lua_State *L;
  int progress_idx, error_idx;
  int anchor, self, result, nresult;
  curl_off_t last_now, last_total;
  /* the outcome */
  CURLcode rc;
  long status, connects, header_size;
  char errbuf[CURL_ERROR_SIZE];
};

struct ak_session {
  CURL *tmpl;                 /* the session's options; NULL once closed */
  CURLSH *share;              /* connections, DNS and TLS session caches */
  CURLM *multi;               /* drives blocking requests */
  char *ca_file, *ca_path, *proxy, *user_agent;
  long http_version;
  int allow_http;
  size_t max_response;
  lua_Integer requests, connects;
  int busy;                   /* a blocking request is running */
  int callbacks;              /* an on_progress of one of its transfers is running */
  ak_xfer *xfers;             /* its loop transfers: running, or whose preparing raised */
  ak_xfer req;                /* the blocking request's state, reused */
};

struct ak_loop {
  CURLM *multi;               /* NULL once closed */
  ak_xfer *xfers;             /* running transfers */
  int count;
  int driving;                /* inside curl_multi_perform: callbacks may run */
  lua_State *L;               /* while driving */
};

/* xfer.c */
void xfer_init(ak_xfer *x);
CURLcode xfer_template(CURL *e, const char *user_agent, const char *ca_file,
                       const char *ca_path, const char *proxy, long http_version);
int xfer_prepare(lua_State *L, ak_xfer *x, ak_session *s, int req, int anchor);
void xfer_collect(ak_xfer *x, CURLcode rc);
int xfer_push_result(lua_State *L, ak_xfer *x);
void xfer_release(ak_xfer *x, size_t keep);
void xfer_unref(lua_State *L, ak_xfer *x);
void buf_release(ak_buf *b, size_t keep);

/* http.c */
ak_session *session_check(lua_State *L, int idx);
CURL *session_easy(ak_session *s, ak_xfer *x);
void session_link(ak_session *s, ak_xfer *x);
void session_unlink(ak_xfer *x);
void session_count(ak_xfer *x);
int session_failure(lua_State *L, const char *msg, const char *kind);

/* loop.c */
void loop_open(lua_State *L);
void loop_detach(lua_State *L, ak_xfer *x, int fail);

#endif
