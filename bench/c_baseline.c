/* The baseline of benchmark 2: the same signed request sent over and over with ONE reused libcurl easy handle
 * (options set once, the connection kept alive), each response body collected in memory, as a plain C program
 * would. The request comes from a file bench/sequential.lua writes from client:prepare:
 *   line 1: URL; then one "Name: value" header per line; an empty line; then the body bytes to the end.
 * Usage: c_baseline <request-file> <seconds>
 * Prints: calls=<n> seconds=<s> rate=<calls per second>   (after one warm-up call that opens the connection) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  buf_t *b = ud;
  size_t total = size * n;
  if (b->cap - b->len < total) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < total) cap *= 2;
    char *q = realloc(b->data, cap);
    if (!q) return 0;
    b->data = q;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, total);
  b->len += total;
  return total;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *s = malloc(cap + 1);
  size_t got;
  while (s && (got = fread(s + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *t = realloc(s, cap * 2 + 1);
      if (!t) {
        free(s);
        s = NULL;
        break;
      }
      s = t;
      cap *= 2;
    }
  }
  fclose(f);
  if (s) s[n] = '\0';
  *len = n;
  return s;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <request-file> <seconds>\n", argv[0]);
    return 2;
  }
  double seconds = atof(argv[2]);
  size_t len;
  char *file = read_all(argv[1], &len);
  if (!file) {
    perror(argv[1]);
    return 2;
  }
  /* Split the file in place: URL line, header lines up to the empty line, then the body. */
  char *url = file, *p = strchr(file, '\n');
  if (!p) return 2;
  *p++ = '\0';
  struct curl_slist *headers = NULL;
  while (*p && *p != '\n') {
    char *eol = strchr(p, '\n');
    if (!eol) return 2;
    *eol = '\0';
    headers = curl_slist_append(headers, p);
    p = eol + 1;
  }
  if (*p != '\n') return 2;
  p++;
  const char *body = p;
  size_t body_len = len - (size_t)(p - file);
  headers = curl_slist_append(headers, "Expect:");

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *e = curl_easy_init();
  buf_t resp = {0};
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);

  long calls = 0, connects = 0;
  double start = 0, end;
  for (;;) {
    resp.len = 0;
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200 || resp.len == 0) {
      fprintf(stderr, "c_baseline: call %ld failed: %s (HTTP %ld)\n", calls, curl_easy_strerror(rc), status);
      return 1;
    }
    if (start == 0) { /* the warm-up call opened the connection; the clock starts now */
      start = now_seconds();
      continue;
    }
    long n = 0;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &n);
    connects += n;
    calls++;
    if ((calls & 63) == 0 && (end = now_seconds()) - start >= seconds) break;
  }
  printf("calls=%ld seconds=%.6f rate=%.1f connects=%ld\n", calls, end - start, calls / (end - start), connects);
  curl_slist_free_all(headers);
  curl_easy_cleanup(e);
  curl_global_cleanup();
  free(resp.data);
  free(file);
  return 0;
}
