/* The baselines of benchmark 2: one signed request sent over and over with ONE reused libcurl easy handle (options
 * set once, the connection kept alive), each response body collected in memory, as a plain C program would. The
 * request comes from a file bench/sequential.lua writes from client:prepare:
 *   line 1: URL; then one "Name: value" header per line; an empty line; then the body bytes to the end.
 * Usage: c_baseline <request-file> <seconds>                          the same bytes every call (the target's
 *                                                                      baseline)
 *        c_baseline <request-file> <seconds> sign <id> <key>          every call signed afresh, as any TC3 client
 *                                                                      must: its timestamp, SHA-256 of the body,
 *                                                                      the HMAC chain (derived key kept per date),
 *                                                                      the header list rebuilt
 *        c_baseline <request-file> authorization <id> <key> <ts>      prints the Authorization this program
 *                                                                      computes for timestamp ts (sequential.lua
 *                                                                      compares it with the client's)
 * Prints: calls=<n> seconds=<s> rate=<calls per second> connects=<n>  (after one warm-up call) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

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

/* Called when the timed calls start and when they end: bench/sequential.lua counts the instructions between the two
 * under callgrind (--dump-before=count_mark). The empty asm keeps the call from being optimised away. */
__attribute__((noinline)) static void count_mark(void) { __asm__ volatile(""); }

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

/* ---- TC3-HMAC-SHA256, the way the client signs (content-type and host only) ---- */

typedef struct {
  const char *id, *key, *host;
  char date[16];              /* the UTC date the derived key is for */
  unsigned char k_signing[32];
} tc3;

static void hex(const unsigned char *d, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

static void hmac(const void *key, size_t klen, const char *msg, size_t mlen, unsigned char out[32]) {
  unsigned int n = 32;
  HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &n);
}

/* Writes "Authorization: ..." for the body at time ts into auth (at least 512 bytes). */
static void tc3_authorization(tc3 *t, const char *body, size_t body_len, time_t ts, char *auth, size_t cap) {
  char date[16], body_hash[65], canon_hash[65], sig[65], canon[512], to_sign[256];
  unsigned char d[32];
  struct tm tm;
  gmtime_r(&ts, &tm);
  strftime(date, sizeof date, "%Y-%m-%d", &tm);
  if (strcmp(date, t->date) != 0) { /* a new day: derive the key again */
    char k0[256];
    snprintf(k0, sizeof k0, "TC3%s", t->key);
    hmac(k0, strlen(k0), date, strlen(date), d);
    hmac(d, 32, "essbasic", 8, d);
    hmac(d, 32, "tc3_request", 11, t->k_signing);
    memcpy(t->date, date, sizeof date);
  }
  SHA256((const unsigned char *)body, body_len, d);
  hex(d, 32, body_hash);
  int n = snprintf(canon, sizeof canon, "POST\n/\n\ncontent-type:application/json\nhost:%s\n\ncontent-type;host\n%s",
                   t->host, body_hash);
  SHA256((const unsigned char *)canon, (size_t)n, d);
  hex(d, 32, canon_hash);
  n = snprintf(to_sign, sizeof to_sign, "TC3-HMAC-SHA256\n%lld\n%s/essbasic/tc3_request\n%s", (long long)ts, date,
               canon_hash);
  hmac(t->k_signing, 32, to_sign, (size_t)n, d);
  hex(d, 32, sig);
  snprintf(auth, cap,
           "Authorization: TC3-HMAC-SHA256 Credential=%s/%s/essbasic/tc3_request, SignedHeaders=content-type;host, "
           "Signature=%s",
           t->id, date, sig);
}

static int starts_with_ci(const char *s, const char *prefix) {
  return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int main(int argc, char **argv) {
  int check = argc == 6 && strcmp(argv[2], "authorization") == 0;
  int sign = argc == 6 && strcmp(argv[3], "sign") == 0;
  if (argc != 3 && !check && !sign) {
    fprintf(stderr, "usage: %s <request-file> <seconds> [sign <id> <key>]\n"
                    "       %s <request-file> authorization <id> <key> <timestamp>\n", argv[0], argv[0]);
    return 2;
  }
  double seconds = check ? 0 : atof(argv[2]);
  size_t len;
  char *file = read_all(argv[1], &len);
  if (!file) {
    perror(argv[1]);
    return 2;
  }
  /* Split the file in place: URL line, header lines up to the empty line, then the body. The signed run keeps the
   * headers that do not change and makes Authorization and X-TC-Timestamp each call. */
  char *url = file, *p = strchr(file, '\n');
  if (!p) return 2;
  *p++ = '\0';
  const char *fixed[32];
  int nfixed = 0;
  tc3 t = {0};
  if (check || sign) {
    t.id = argv[check ? 3 : 4];
    t.key = argv[check ? 4 : 5];
  }
  while (*p && *p != '\n') {
    char *eol = strchr(p, '\n');
    if (!eol || nfixed == 31) return 2;
    *eol = '\0';
    if (starts_with_ci(p, "Host: ")) t.host = p + 6;
    if (!((check || sign) && (starts_with_ci(p, "Authorization:") || starts_with_ci(p, "X-TC-Timestamp:")))) {
      fixed[nfixed++] = p;
    }
    p = eol + 1;
  }
  if (*p != '\n' || ((check || sign) && !t.host)) return 2;
  p++;
  fixed[nfixed++] = "Expect:";
  const char *body = p;
  size_t body_len = len - (size_t)(p - file);
  char auth[512], stamp[64];

  if (check) {
    tc3_authorization(&t, body, body_len, (time_t)atoll(argv[5]), auth, sizeof auth);
    printf("%s\n", auth);
    free(file);
    return 0;
  }

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *e = curl_easy_init();
  buf_t resp = {0};
  struct curl_slist *headers = NULL;
  if (!sign) {
    for (int i = 0; i < nfixed; i++) headers = curl_slist_append(headers, fixed[i]);
  }
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
    if (sign) {
      time_t now = time(NULL);
      tc3_authorization(&t, body, body_len, now, auth, sizeof auth);
      snprintf(stamp, sizeof stamp, "X-TC-Timestamp: %lld", (long long)now);
      curl_slist_free_all(headers);
      headers = NULL;
      for (int i = 0; i < nfixed; i++) headers = curl_slist_append(headers, fixed[i]);
      headers = curl_slist_append(headers, auth);
      headers = curl_slist_append(headers, stamp);
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    }
    resp.len = 0;
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200 || resp.len == 0) {
      fprintf(stderr, "c_baseline: call %ld failed: %s (HTTP %ld)\n", calls, curl_easy_strerror(rc), status);
      return 1;
    }
    if (start == 0) { /* the warm-up call opened the connection; the clock starts now */
      count_mark();
      start = now_seconds();
      continue;
    }
    long n = 0;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &n);
    connects += n;
    calls++;
    if ((calls & 63) == 0 && (end = now_seconds()) - start >= seconds) break;
  }
  count_mark();
  printf("calls=%ld seconds=%.6f rate=%.1f connects=%ld\n", calls, end - start, calls / (end - start), connects);
  curl_slist_free_all(headers);
  curl_easy_cleanup(e);
  curl_global_cleanup();
  free(resp.data);
  free(file);
  return 0;
}
