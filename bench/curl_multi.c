/*
 * The floor for `make bench`'s concurrency figure: COUNT GETs of one URL on libcurl's multi
 * interface, WIDTH in flight at a time (a new one starts as soon as one ends), bodies and
 * headers buffered in memory (what core.loop does, minus Lua).
 *
 *   curl_multi URL COUNT WIDTH   prints "<milliseconds for all of them>"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct {
  char *data;
  size_t len, cap;
} buf;

typedef struct {
  CURL *easy;
  buf body, head;
} slot;

static size_t collect(char *p, size_t size, size_t nmemb, void *ud)
{
  buf *b = ud;
  size_t n = size * nmemb;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16384;
    char *d;
    while (cap < b->len + n)
      cap *= 2;
    d = realloc(b->data, cap);
    if (d == NULL)
      return 0;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return n;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start(CURLM *multi, slot *s, const char *url)
{
  s->easy = curl_easy_init();
  s->body.len = s->head.len = 0;
  curl_easy_setopt(s->easy, CURLOPT_URL, url);
  curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &s->body);
  curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, collect);
  curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, &s->head);
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
  curl_multi_add_handle(multi, s->easy);
}

int main(int argc, char **argv)
{
  CURLM *multi;
  slot *slots;
  long count, width, started = 0, ended = 0, i;
  double t0;
  if (argc != 4 || (count = atol(argv[2])) <= 0 || (width = atol(argv[3])) <= 0) {
    fprintf(stderr, "usage: curl_multi URL COUNT WIDTH\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  multi = curl_multi_init();
  slots = calloc((size_t)width, sizeof *slots);
  if (multi == NULL || slots == NULL)
    return 1;
  t0 = now();
  for (i = 0; i < width && started < count; i++, started++)
    start(multi, &slots[i], argv[1]);
  while (ended < count) {
    int running, left;
    CURLMsg *m;
    curl_multi_perform(multi, &running);
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
      slot *s;
      long status = 0;
      if (m->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      if (m->data.result != CURLE_OK || status != 200) {
        fprintf(stderr, "curl_multi: a request failed: %s (status %ld)\n",
                curl_easy_strerror(m->data.result), status);
        return 1;
      }
      curl_multi_remove_handle(multi, s->easy);
      curl_easy_cleanup(s->easy);
      ended++;
      if (started < count) {
        start(multi, s, argv[1]);
        started++;
      }
    }
    if (ended < count)
      curl_multi_poll(multi, NULL, 0, 1000, NULL);
  }
  printf("%.1f\n", (now() - t0) * 1000.0);
  for (i = 0; i < width; i++) {
    free(slots[i].body.data);
    free(slots[i].head.data);
  }
  free(slots);
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return 0;
}
