/*
 * The floor for `make bench`: sequential GETs of one URL straight on libcurl, one reused easy
 * handle, body and headers buffered in memory (what assesskit.core does, minus Lua).
 *
 *   curl_floor URL COUNT   prints "<requests per second>"
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

int main(int argc, char **argv)
{
  CURL *easy;
  buf body = {NULL, 0, 0}, head = {NULL, 0, 0};
  long i, count, status = 0;
  double t0, t1;
  if (argc != 3 || (count = atol(argv[2])) <= 0) {
    fprintf(stderr, "usage: curl_floor URL COUNT\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  easy = curl_easy_init();
  if (easy == NULL)
    return 1;
  curl_easy_setopt(easy, CURLOPT_URL, argv[1]);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, collect);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &head);
  t0 = now();
  for (i = 0; i < count; i++) {
    CURLcode rc;
    body.len = head.len = 0;
    rc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
      fprintf(stderr, "curl_floor: request %ld failed: %s (status %ld)\n", i,
              curl_easy_strerror(rc), status);
      return 1;
    }
  }
  t1 = now();
  printf("%.0f\n", (double)count / (t1 - t0));
  curl_easy_cleanup(easy);
  free(body.data);
  free(head.data);
  curl_global_cleanup();
  return 0;
}
