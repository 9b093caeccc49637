/* HTTP over libcurl. A session keeps one easy handle, and with it one kept-alive connection, across calls; a multi
 * runs many transfers at once and recycles finished handles so their connections stay in its cache.
 *
 * Memory discipline: every C resource (handles, header lists, buffers, option strings) hangs off a userdata that
 * already has its __gc metatable, so a Lua error anywhere leaks nothing. libcurl callbacks touch only C buffers:
 * no Lua API runs inside a libcurl frame, so no Lua error can unwind through libcurl. */
/* LuaRocks does not look for this header (see the rockspec's external_dependencies): the compiler does, in its
 * multiarch directories too, and a missing one is named with the package that brings it. */
#if defined(__has_include) && !defined(__CPPCHECK__) /* cppcheck cannot evaluate __has_include */
#if !__has_include(<curl/curl.h>)
#error "curl/curl.h not found: install libcurl4-openssl-dev (Debian, Ubuntu), curl-dev (Alpine), libcurl-devel (Fedora), or pass CURL_DIR=<prefix> to luarocks (Homebrew: CURL_DIR=$(brew --prefix curl))"
#endif
#endif
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "core.h"

/* CURLOPT_PREREQFUNCTION tells when a request may have left (on_prereq); nothing older can say it exactly. */
#if LIBCURL_VERSION_NUM < 0x075000
#error "libcurl 7.80 or newer is needed (CURLOPT_PREREQFUNCTION)"
#endif

#define SESSION_MT "essbasic.http_session"
#define MULTI_MT "essbasic.http_multi"

#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_RESPONSE_BYTES (32.0 * 1024 * 1024)
#define MAX_RESPONSE_HEADER_BYTES ((size_t)1 << 20)
/* Buffers above this size are released after a call rather than kept for the next one. */
#define KEEP_BUFFER_BYTES ((size_t)1 << 20)
/* Connections a multi keeps open; callers run 20-50 transfers at once and want every one kept alive. */
#define MULTI_MAX_CONNECTS 64L
/* Finished easy handles a multi keeps for reuse; more than the connection cache holds would buy nothing. */
#define MULTI_MAX_IDLE 64

/* ---------------------------------------------------------------- growable byte buffer (C heap, no Lua) */

typedef struct {
  char *data;
  size_t len, cap;
} buf_t;

/* Room for n more bytes; returns where they go (and counts them as used), or NULL when out of memory. */
static char *buf_extend(buf_t *b, size_t n) {
  if (b->cap - b->len < n) {
    size_t need = b->len + n;
    if (need < b->len) return NULL;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p) return NULL;
    b->data = p;
    b->cap = cap;
  }
  char *at = b->data + b->len;
  b->len += n;
  return at;
}

static int buf_append(buf_t *b, const char *s, size_t n) {
  char *at = buf_extend(b, n);
  if (!at) return 0;
  if (n) memcpy(at, s, n);
  return 1;
}

static void buf_free(buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

static void buf_recycle(buf_t *b) {
  if (b->cap > KEEP_BUFFER_BYTES) buf_free(b);
  b->len = 0;
}

/* ---------------------------------------------------------------- options shared by sessions and multis */

typedef struct {
  double timeout, connect_timeout;
  char *proxy, *ca_file, *ca_path;
  int ssl_verify;
  size_t max_response_bytes;
} http_opts;

static double opt_seconds(lua_State *L, int t, const char *name, double dflt) {
  double v = dflt;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "option '%s' must be a number of seconds", name);
    v = lua_tonumber(L, -1);
    if (!(v > 0 && v <= 1e6)) luaL_error(L, "option '%s' must be > 0 and <= 1e6 seconds", name);
  }
  lua_pop(L, 1);
  return v;
}

/* Returns a malloc'ed copy (libcurl keeps the pointer of some string options) or NULL when the option is absent. */
static char *opt_string(lua_State *L, int t, const char *name) {
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t len = 0;
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (!s) luaL_error(L, "option '%s' must be a string", name);
  if (strlen(s) != len) luaL_error(L, "option '%s' contains a NUL byte", name);
  char *copy = malloc(len + 1);
  if (!copy) luaL_error(L, "out of memory");
  memcpy(copy, s, len + 1);
  lua_pop(L, 1);
  return copy;
}

/* Fills o field by field; the strings land in o (owned by a userdata) as soon as they are copied. */
static void opts_read(lua_State *L, int t, http_opts *o) {
  o->timeout = DEFAULT_TIMEOUT;
  o->connect_timeout = DEFAULT_CONNECT_TIMEOUT;
  o->ssl_verify = 1;
  o->max_response_bytes = (size_t)DEFAULT_MAX_RESPONSE_BYTES;
  if (lua_isnoneornil(L, t)) return;
  luaL_checktype(L, t, LUA_TTABLE);
  o->timeout = opt_seconds(L, t, "timeout", DEFAULT_TIMEOUT);
  o->connect_timeout = opt_seconds(L, t, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
  o->proxy = opt_string(L, t, "proxy");
  o->ca_file = opt_string(L, t, "ca_file");
  o->ca_path = opt_string(L, t, "ca_path");
  lua_getfield(L, t, "ssl_verify");
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1)) luaL_error(L, "option 'ssl_verify' must be a boolean");
    o->ssl_verify = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "max_response_bytes");
  if (!lua_isnil(L, -1)) {
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(v >= 0 && v <= 9007199254740992.0 && v == floor(v) && v < (double)SIZE_MAX))
      luaL_error(L, "option 'max_response_bytes' must be a non-negative integer");
    o->max_response_bytes = (size_t)v;
  }
  lua_pop(L, 1);
}

static void opts_free(http_opts *o) {
  free(o->proxy);
  free(o->ca_file);
  free(o->ca_path);
  o->proxy = o->ca_file = o->ca_path = NULL;
}

/* ---------------------------------------------------------------- kept-alive connections: notes for on_prereq */

/* What a finished exchange leaves about its connection, so that on_prereq can look at that connection's socket when
 * libcurl reuses it: libcurl tells the callback only the addresses, and CURLINFO_ACTIVESOCKET names the last
 * connection of the handle, not the one in use. One note per local port (a kept-alive connection's own). */
#define CONN_NOTES 64
typedef struct {
  long local_port, remote_port, version; /* version: CURLINFO_HTTP_VERSION of the last exchange */
  curl_socket_t fd;
} conn_note;

typedef struct {
  conn_note notes[CONN_NOTES];
} conn_memo;

static void memo_init(conn_memo *m) {
  for (int i = 0; i < CONN_NOTES; i++) {
    m->notes[i].local_port = -1;
    m->notes[i].fd = CURL_SOCKET_BAD;
  }
}

/* After an exchange that got an answer: the handle's connection, if libcurl kept it. */
static void memo_note(conn_memo *m, CURL *e) {
  long local_port = -1, remote_port = -1, version = 0;
  curl_socket_t fd = CURL_SOCKET_BAD;
  if (curl_easy_getinfo(e, CURLINFO_LOCAL_PORT, &local_port) != CURLE_OK || local_port < 0) return;
  curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &remote_port);
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &fd); /* CURL_SOCKET_BAD when libcurl closed it */
  conn_note *n = &m->notes[local_port % CONN_NOTES];
  n->local_port = local_port;
  n->remote_port = remote_port;
  n->version = version;
  n->fd = fd;
}

/* Does the HTTP/1 connection behind these ports hold bytes nobody asked for (a second copy of an answer, the rest
 * of an oversized one)? Its next reader would take them for its own answer. HTTP/2 frames arrive at any time and
 * belong to their streams: not checked. A TLS record already inside OpenSSL is not seen (libcurl reads records one
 * at a time, so a record that follows a complete answer stays in the socket). */
static int memo_unread(const conn_memo *m, long local_port, long remote_port) {
  const conn_note *n = &m->notes[local_port % CONN_NOTES];
  if (n->local_port != local_port || n->remote_port != remote_port || n->fd == CURL_SOCKET_BAD) return 0;
  if (n->version != CURL_HTTP_VERSION_1_0 && n->version != CURL_HTTP_VERSION_1_1) return 0;
  struct pollfd p = {.fd = n->fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0;
}

/* ---------------------------------------------------------------- one transfer: handle, buffers, callbacks */

typedef struct xfer {
  CURL *easy;
  /* The request's header list, built without a malloc per line: the lines sit NUL-terminated in `lines` and the
   * list's nodes in `nodes`, both owned here (so an argument error half-way through leaks nothing) and reused by
   * the next request. libcurl only reads the list, and only while a transfer runs. */
  struct curl_slist *nodes;
  size_t nodes_cap;
  buf_t body, resp_headers, lines;
  size_t max_body;
  int want_headers; /* 0: the caller reads status and body only; response headers are neither kept nor pushed */
  int too_large, out_of_memory;
  int repeatable;     /* the caller allows the request to be sent twice (transport contract) */
  int requests_begun; /* times libcurl was about to write this request (on_prereq said go): > 0 = it may have left */
  int resend_refused; /* on_prereq refused a second sending of a request that is not repeatable */
  int stale;          /* on_prereq refused a reused connection that held unread bytes; nothing was written */
  int stale_retries;
  conn_memo *memo; /* the session's or multi's notes on its kept-alive HTTP/1 connections */
  /* The handle keeps the options of its last request (xfer_prepare): set up for a POST or a GET (conf_post) with
   * the CA file conf_ca (a copy; NULL: libcurl's default). configured = 0: reset and set every option again. */
  int configured, conf_post;
  char *conf_ca;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
  int id_ref, body_ref; /* multi only: the caller's id and the request body, kept alive in the multi's table */
  struct xfer *prev, *next;
} xfer;

/* Appends n bytes to b when b stays within limit bytes, else marks the transfer (too large, out of memory) → what
 * a libcurl write callback returns: n, or 0 to stop the transfer. */
static size_t append_within(xfer *x, buf_t *b, const char *p, size_t n, size_t limit) {
  if (n > limit - b->len) {
    x->too_large = 1;
    return 0;
  }
  if (!buf_append(b, p, n)) {
    x->out_of_memory = 1;
    return 0;
  }
  return n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  return append_within(x, &x->body, p, size * n, x->max_body);
}

/* Keeps the raw header lines of the last response only: a status line starts a new response (after a 100 Continue
 * or a proxy's CONNECT answer). */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t total = size * n;
  if (!x->want_headers) return total;
  if (total >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    x->resp_headers.len = 0;
    return total;
  }
  return append_within(x, &x->resp_headers, p, total, MAX_RESPONSE_HEADER_BYTES);
}

/* libcurl calls this each time it is about to write this transfer's request: after the connection (TCP, a proxy's
 * CONNECT tunnel, TLS) is up or taken from the cache, before the first byte (lib/multi.c, MSTATE_DO; the same in
 * 7.88 and 8.x). A second call is libcurl sending the request again by itself, after a reused connection died with
 * no byte of an answer (lib/transfer.c, Curl_retry_request), which is also what a lost answer looks like: refused
 * for a request that is not repeatable. So after the first call the request may have reached the server, whatever
 * happens to the connections after it; before it, nothing of it was written. */
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port) {
  xfer *x = ud;
  (void)remote_ip;
  (void)local_ip;
  if (x->requests_begun > 0 && !x->repeatable) {
    x->resend_refused = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  long fresh = 0; /* connections this transfer opened: none means the one in use is a reused one */
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &fresh);
  if (fresh == 0 && x->memo && memo_unread(x->memo, local_port, remote_port)) {
    x->stale = 1; /* an aborted transfer's connection is closed by libcurl (multi_done: "premature") */
    return CURL_PREREQFUNC_ABORT;
  }
  x->requests_begun++;
  return CURL_PREREQFUNC_OK;
}

static void xfer_init(xfer *x) {
  memset(x, 0, sizeof *x);
  x->id_ref = x->body_ref = LUA_NOREF;
}

static void xfer_release(xfer *x) {
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
  free(x->conf_ca);
  x->conf_ca = NULL;
  x->configured = 0;
  free(x->nodes);
  x->nodes = NULL;
  x->nodes_cap = 0;
  buf_free(&x->body);
  buf_free(&x->resp_headers);
  buf_free(&x->lines);
}

/* Ready for the next request: large buffers go back to the system; the header nodes stay for the next list. */
static void xfer_recycle(xfer *x) {
  buf_recycle(&x->body);
  buf_recycle(&x->resp_headers);
  buf_recycle(&x->lines);
}

/* ---------------------------------------------------------------- request arguments */

typedef struct {
  int post;
  const char *url;
  const char *body;
  size_t body_len;
  double timeout, connect_timeout;
  int want_headers;
  int repeatable; /* the caller allows libcurl to send this request a second time (transport contract) */
} req_args;

/* Reads method, url, body and per-call opts at stack slots base..base+4 (headers, at base+2, are read by
 * build_headers). Strings point into Lua values that stay on the stack for the whole call. */
static void read_request(lua_State *L, int base, const http_opts *o, req_args *r) {
  size_t mlen, ulen;
  const char *method = luaL_checklstring(L, base, &mlen);
  if (mlen == 4 && memcmp(method, "POST", 4) == 0)
    r->post = 1;
  else if (mlen == 3 && memcmp(method, "GET", 3) == 0)
    r->post = 0;
  else
    luaL_argerror(L, base, "method must be GET or POST");
  r->url = luaL_checklstring(L, base + 1, &ulen);
  luaL_argcheck(L, strlen(r->url) == ulen, base + 1, "url contains a NUL byte");
  if (!lua_isnoneornil(L, base + 2)) luaL_checktype(L, base + 2, LUA_TTABLE);
  r->body = luaL_optlstring(L, base + 3, "", &r->body_len);
  luaL_argcheck(L, r->post || r->body_len == 0, base + 3, "a GET request has no body");
  r->timeout = o->timeout;
  r->connect_timeout = o->connect_timeout;
  r->want_headers = 1;
  r->repeatable = 0;
  if (!lua_isnoneornil(L, base + 4)) {
    luaL_checktype(L, base + 4, LUA_TTABLE);
    r->timeout = opt_seconds(L, base + 4, "timeout", o->timeout);
    r->connect_timeout = opt_seconds(L, base + 4, "connect_timeout", o->connect_timeout);
    lua_getfield(L, base + 4, "response_headers");
    if (!lua_isnil(L, -1)) {
      if (!lua_isboolean(L, -1)) luaL_error(L, "option 'response_headers' must be a boolean");
      r->want_headers = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, base + 4, "repeatable");
    if (!lua_isnil(L, -1)) {
      if (!lua_isboolean(L, -1)) luaL_error(L, "option 'repeatable' must be a boolean");
      r->repeatable = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
  }
}

/* Three vectorised scans: a header value (the Authorization line, say) is checked at a few bytes a cycle. */
static int has_crlfnul(const char *s, size_t n) {
  return strlen(s) != n || memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

/* Appends "name: value" (or "name;" for an empty value: libcurl's way to send a header with an empty value, as
 * "name:" would remove it) and a NUL to x->lines, room reserved once. */
static void add_line(lua_State *L, xfer *x, const char *name, size_t nlen, const char *value, size_t vlen) {
  size_t len = nlen + (vlen ? 2 + vlen : 1) + 1;
  char *p = len > nlen ? buf_extend(&x->lines, len) : NULL;
  if (!p) luaL_error(L, "out of memory");
  memcpy(p, name, nlen);
  p += nlen;
  if (vlen) {
    memcpy(p, ": ", 2);
    memcpy(p + 2, value, vlen);
    p += 2 + vlen;
  } else {
    *p++ = ';';
  }
  *p = '\0';
}

/* Links x->nodes over the n NUL-terminated lines in x->lines; returns the list's head. */
static struct curl_slist *link_lines(lua_State *L, xfer *x, size_t n) {
  if (n > x->nodes_cap) {
    size_t cap = x->nodes_cap ? x->nodes_cap : 16;
    while (cap < n) cap *= 2;
    struct curl_slist *p = realloc(x->nodes, cap * sizeof *p);
    if (!p) luaL_error(L, "out of memory");
    x->nodes = p;
    x->nodes_cap = cap;
  }
  char *line = x->lines.data;
  for (size_t i = 0; i < n; i++) {
    x->nodes[i].data = line;
    x->nodes[i].next = i + 1 < n ? &x->nodes[i + 1] : NULL;
    line += strlen(line) + 1;
  }
  return x->nodes;
}

/* Builds the header list from the map at slot idx plus an empty Expect: (libcurl would otherwise send
 * "Expect: 100-continue" for bodies over 1 KiB and wait a round trip). Values are never quoted in errors. */
static struct curl_slist *build_headers(lua_State *L, int idx, xfer *x) {
  int caller_expect = 0;
  size_t n = 0;
  x->lines.len = 0;
  if (!lua_isnoneornil(L, idx)) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t nlen, vlen;
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "header names must be strings");
      const char *name = lua_tolstring(L, -2, &nlen);
      if (nlen == 0 || has_crlfnul(name, nlen) || memchr(name, ':', nlen) || memchr(name, ' ', nlen))
        luaL_error(L, "invalid header name (empty, or contains CR, LF, NUL, ':' or space)");
      int vt = lua_type(L, -1);
      if (vt != LUA_TSTRING && vt != LUA_TNUMBER) luaL_error(L, "header '%s' must have a string value", name);
      const char *value = lua_tolstring(L, -1, &vlen); /* converts the value slot only; the key is untouched */
      if (has_crlfnul(value, vlen)) luaL_error(L, "value of header '%s' contains CR, LF or NUL", name);
      if (nlen == 6 && strncasecmp(name, "expect", 6) == 0) caller_expect = 1;
      add_line(L, x, name, nlen, value, vlen);
      n++;
      lua_pop(L, 1);
    }
  }
  if (!caller_expect) {
    if (!buf_append(&x->lines, "Expect:", sizeof "Expect:")) luaL_error(L, "out of memory"); /* NUL included */
    n++;
  }
  return link_lines(L, x, n);
}

/* ---------------------------------------------------------------- options and outcome (shared by easy and multi) */

static long seconds_to_ms(double s) {
  double ms = ceil(s * 1000.0);
  return ms < 1 ? 1 : (long)ms; /* 0 would mean "no timeout" to libcurl */
}

static int same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Sets the options of one request. The first request of a handle, and any after a failed transfer, a fresh-connect
 * retry (xfer_again), a change between POST and GET or of the CA file, starts from curl_easy_reset and sets every
 * option: nothing from an earlier request survives except the connection, DNS and TLS session caches. Otherwise
 * the handle still holds this session's options from the last request (libcurl keeps them between transfers) and
 * only what a request brings is set again: URL, body, header list and timeouts. That saves the reset and two dozen
 * setopt calls per request. No Lua here. */
static CURLcode xfer_prepare(xfer *x, struct curl_slist *headers, const http_opts *o, const req_args *r) {
  CURL *e = x->easy;
  CURLcode rc = CURLE_OK;
  const char *ca_file = o->ca_file ? o->ca_file : getenv("CURL_CA_BUNDLE");
  int full = !x->configured || x->conf_post != r->post || !same_string(x->conf_ca, ca_file);
  x->body.len = x->resp_headers.len = 0;
  x->want_headers = r->want_headers;
  x->too_large = x->out_of_memory = x->resend_refused = x->stale = x->stale_retries = x->requests_begun = 0;
  x->repeatable = r->repeatable;
  x->max_body = o->max_response_bytes;
  x->errbuf[0] = '\0';
#define SET(opt, val) \
  if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val)
  if (full) {
    x->configured = 0; /* until every option below is set */
    free(x->conf_ca);
    x->conf_ca = NULL;
    if (ca_file && !(x->conf_ca = strdup(ca_file))) return CURLE_OUT_OF_MEMORY;
    curl_easy_reset(e);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    if (!r->post) SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_SSL_VERIFYPEER, o->ssl_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, o->ssl_verify ? 2L : 0L);
    if (ca_file) SET(CURLOPT_CAINFO, ca_file);
    if (o->ca_path) SET(CURLOPT_CAPATH, o->ca_path);
    if (o->proxy) SET(CURLOPT_PROXY, o->proxy);
    SET(CURLOPT_ACCEPT_ENCODING, (char *)NULL);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* Lets libcurl refuse early on a Content-Length over the limit; 0 would mean "no limit" to it. */
    if (o->max_response_bytes > 0) SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_response_bytes);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_PREREQDATA, x);
    SET(CURLOPT_PRIVATE, (void *)x);
  }
  SET(CURLOPT_URL, r->url);
  if (r->post) {
    /* One buffer, so headers and body leave in one send; libcurl reads it in place (the caller keeps it alive). */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SET(CURLOPT_POSTFIELDS, r->body);
  }
  SET(CURLOPT_HTTPHEADER, headers);
  SET(CURLOPT_TIMEOUT_MS, seconds_to_ms(r->timeout));
  SET(CURLOPT_CONNECTTIMEOUT_MS, seconds_to_ms(r->connect_timeout));
#undef SET
  if (rc == CURLE_OK && full) {
    x->configured = 1;
    x->conf_post = r->post;
  }
  return rc;
}

typedef struct {
  long status; /* > 0: the server answered */
  const char *kind, *message;
  int sent;
  long connects;
} outcome_t;

static int is_tls_failure(CURLcode rc) {
  switch (rc) {
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
    return 1;
  default:
    return 0;
  }
}

/* Classifies a finished transfer. `performed` is false when setting the options already failed. Whether the
 * request may have left is on_prereq's count alone: a connect, TLS or proxy failure after it (libcurl's own resend
 * on a fresh connection, refused) does not make the first sending undone. */
static void xfer_outcome(xfer *x, CURLcode rc, int performed, outcome_t *out) {
  memset(out, 0, sizeof *out);
  if (rc != CURLE_OK) x->configured = 0; /* the next request starts from a reset handle */
  if (performed) curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &out->connects);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &out->status);
    if (out->status > 0) return;
  }
  long proxy_answer = 0; /* the proxy's status for our CONNECT; 0 without a tunnel */
  if (performed) curl_easy_getinfo(x->easy, CURLINFO_HTTP_CONNECTCODE, &proxy_answer);
  out->message = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
  out->sent = performed && x->requests_begun > 0;
  if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    out->kind = "too_large";
    out->message = "response exceeds max_response_bytes";
  } else if (x->out_of_memory) {
    out->kind = "other";
    out->message = "out of memory while receiving the response";
  } else if (x->resend_refused || rc == CURLE_GOT_NOTHING) {
    /* The request went out and the connection closed with no byte of an answer: carried out or not. libcurl's
     * own words for the refused resend ("aborted by pre-request callback") would only confuse. */
    out->kind = "closed";
    if (x->resend_refused) out->message = "the connection closed after the request was sent, before any answer";
  } else if (x->stale) {
    out->kind = "other";
    out->message = "every kept-alive connection held bytes of an answer to no request of ours";
  } else if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY) {
    out->kind = "dns";
  } else if (rc == CURLE_COULDNT_CONNECT || (proxy_answer != 0 && (proxy_answer < 200 || proxy_answer > 299))) {
    out->kind = "connect"; /* a proxy that refused the tunnel: libcurl says CURLE_RECV_ERROR */
  } else if (is_tls_failure(rc)) {
    out->kind = "tls";
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    out->kind = "timeout";
  } else {
    out->kind = "other";
  }
}

/* A transfer on_prereq stopped before it wrote anything, because its reused connection held unread bytes (libcurl
 * closed that connection): worth another go on a fresh one. Ready for it when this returns 1. */
#define MAX_STALE_RETRIES 2
static int xfer_again(xfer *x, CURLcode rc) {
  if (rc != CURLE_ABORTED_BY_CALLBACK || !x->stale || x->resend_refused || x->stale_retries >= MAX_STALE_RETRIES)
    return 0;
  x->stale = 0;
  x->stale_retries++;
  x->configured = 0; /* FRESH_CONNECT must not outlive this request */
  x->errbuf[0] = '\0';
  x->body.len = x->resp_headers.len = 0;
  return curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK;
}

/* Pushes the last response's headers as a map: names lowercase, values trimmed, repeated names joined by ", ". */
static void push_headers(lua_State *L, xfer *x) {
  char *p = x->resp_headers.data, *end = p + x->resp_headers.len;
  lua_newtable(L);
  while (p < end) {
    char *eol = memchr(p, '\n', (size_t)(end - p));
    char *next = eol ? eol + 1 : end;
    char *lend = eol ? eol : end;
    char *colon = memchr(p, ':', (size_t)(lend - p));
    if (colon && colon > p && *p != ' ' && *p != '\t') {
      char *ns = p, *ne = colon, *vs = colon + 1, *ve = lend;
      while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
      while (vs < ve && (*vs == ' ' || *vs == '\t')) vs++;
      while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r')) ve--;
      for (char *c = ns; c < ne; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + ('a' - 'A'));
      lua_pushlstring(L, ns, (size_t)(ne - ns));
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, vs, (size_t)(ve - vs));
      } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, vs, (size_t)(ve - vs));
        lua_concat(L, 3);
      }
      lua_rawset(L, -3);
    }
    p = next;
  }
}

static void push_body(lua_State *L, xfer *x) {
  lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
}

static void curl_init_once(lua_State *L) {
  static int done = 0;
  if (done) return;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) luaL_error(L, "curl_global_init failed");
  done = 1;
}

/* ---------------------------------------------------------------- session: one easy handle */

typedef struct {
  http_opts opts;
  xfer x;
  conn_memo memo;
  long long requests, connects;
  int closed;
} session_t;

static session_t *check_session(lua_State *L) {
  session_t *s = luaL_checkudata(L, 1, SESSION_MT);
  if (s->closed) luaL_error(L, SESSION_MT " used after close");
  return s;
}

static int l_session_close(lua_State *L) {
  session_t *s = luaL_checkudata(L, 1, SESSION_MT);
  xfer_release(&s->x);
  opts_free(&s->opts);
  s->closed = 1;
  return 0;
}

static int l_http_session(lua_State *L) {
  lua_settop(L, 1); /* the opts stay at slot 1, below the new userdata */
  session_t *s = essbasic_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  xfer_init(&s->x);
  memo_init(&s->memo);
  s->x.memo = &s->memo;
  s->closed = 1; /* until the handle exists: a half-built session refuses use but is still freed by __gc */
  luaL_setmetatable(L, SESSION_MT);
  opts_read(L, 1, &s->opts);
  s->x.easy = curl_easy_init();
  if (!s->x.easy) return luaL_error(L, "curl_easy_init failed");
  s->closed = 0;
  return 1;
}

/* session:request(method, url, headers, body [, opts]) -> status, headers, body | nil, kind, message, sent
 * opts: timeout, connect_timeout, response_headers (false: headers comes back nil, the map is not built). */
static int l_session_request(lua_State *L) {
  session_t *s = check_session(L);
  req_args r;
  outcome_t out;
  read_request(L, 2, &s->opts, &r);
  struct curl_slist *headers = build_headers(L, 4, &s->x);
  CURLcode rc = xfer_prepare(&s->x, headers, &s->opts, &r);
  int performed = rc == CURLE_OK;
  if (performed) {
    do rc = curl_easy_perform(s->x.easy);
    while (xfer_again(&s->x, rc));
  }
  xfer_outcome(&s->x, rc, performed, &out);
  if (out.status > 0) memo_note(&s->memo, s->x.easy);
  s->requests++;
  s->connects += out.connects;
  if (out.status > 0) {
    lua_pushinteger(L, (lua_Integer)out.status);
    if (s->x.want_headers)
      push_headers(L, &s->x);
    else
      lua_pushnil(L);
    push_body(L, &s->x);
  } else {
    lua_pushnil(L);
    lua_pushstring(L, out.kind);
    lua_pushstring(L, out.message);
    lua_pushboolean(L, out.sent);
  }
  xfer_recycle(&s->x);
  return out.status > 0 ? 3 : 4;
}

static void push_info(lua_State *L, long long connects, long long requests) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)connects);
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, (lua_Integer)requests);
  lua_setfield(L, -2, "requests");
}

static int l_session_info(lua_State *L) {
  session_t *s = check_session(L);
  push_info(L, s->connects, s->requests);
  return 1;
}

/* ---------------------------------------------------------------- multi: many transfers at once */

typedef struct {
  http_opts opts;
  conn_memo memo;
  CURLM *multi;
  xfer *active, *done, *idle; /* doubly linked lists; every xfer is on exactly one */
  int n_active, n_done, n_idle;
  int refs; /* registry reference of the table that keeps ids and bodies alive */
  long long requests, connects;
  int closed;
} multi_t;

static void list_push(xfer **head, xfer *x) {
  x->prev = NULL;
  x->next = *head;
  if (*head) (*head)->prev = x;
  *head = x;
}

static void list_remove(xfer **head, xfer *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    *head = x->next;
  if (x->next) x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

static void xfer_destroy(xfer *x) {
  xfer_release(x);
  free(x);
}

static void list_destroy(xfer **head) {
  while (*head) {
    xfer *x = *head;
    /* The head's prev is always NULL, so list_remove moves *head on; the analyzer cannot see that invariant.
     * NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
    list_remove(head, x);
    xfer_destroy(x);
  }
}

static multi_t *check_multi(lua_State *L) {
  multi_t *m = luaL_checkudata(L, 1, MULTI_MT);
  if (m->closed) luaL_error(L, MULTI_MT " used after close");
  return m;
}

static void multi_unref(lua_State *L, multi_t *m, xfer *x) {
  if (m->refs != LUA_NOREF && (x->id_ref != LUA_NOREF || x->body_ref != LUA_NOREF)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->refs);
    luaL_unref(L, -1, x->id_ref);
    luaL_unref(L, -1, x->body_ref);
    lua_pop(L, 1);
  }
  x->id_ref = x->body_ref = LUA_NOREF;
}

static int l_multi_close(lua_State *L) {
  multi_t *m = luaL_checkudata(L, 1, MULTI_MT);
  for (xfer *x = m->active; x; x = x->next)
    if (m->multi) curl_multi_remove_handle(m->multi, x->easy);
  list_destroy(&m->active);
  list_destroy(&m->done);
  list_destroy(&m->idle);
  m->n_active = m->n_done = m->n_idle = 0;
  if (m->multi) curl_multi_cleanup(m->multi);
  m->multi = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, m->refs);
  m->refs = LUA_NOREF;
  opts_free(&m->opts);
  m->closed = 1;
  return 0;
}

static int l_http_multi(lua_State *L) {
  lua_settop(L, 1); /* the opts stay at slot 1, below the new userdata */
  multi_t *m = essbasic_newuserdata(L, sizeof *m);
  memset(m, 0, sizeof *m);
  memo_init(&m->memo);
  m->refs = LUA_NOREF;
  m->closed = 1; /* until the multi handle exists */
  luaL_setmetatable(L, MULTI_MT);
  opts_read(L, 1, &m->opts);
  lua_newtable(L);
  m->refs = luaL_ref(L, LUA_REGISTRYINDEX);
  m->multi = curl_multi_init();
  if (!m->multi) return luaL_error(L, "curl_multi_init failed");
  curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, MULTI_MAX_CONNECTS);
  m->closed = 0;
  return 1;
}

/* Takes a recycled transfer, or makes one; either way it sits on the idle list until it is fully set up. */
static xfer *multi_take_idle(lua_State *L, multi_t *m) {
  if (!m->idle) {
    xfer *x = malloc(sizeof *x);
    if (!x) luaL_error(L, "out of memory");
    xfer_init(x);
    x->memo = &m->memo;
    x->easy = curl_easy_init();
    if (!x->easy) {
      free(x);
      luaL_error(L, "curl_easy_init failed");
    }
    list_push(&m->idle, x);
    m->n_idle++;
  }
  return m->idle;
}

/* multi:add(id, method, url, headers, body [, opts]) */
static int l_multi_add(lua_State *L) {
  multi_t *m = check_multi(L);
  req_args r;
  luaL_checkany(L, 2);
  read_request(L, 3, &m->opts, &r);
  xfer *x = multi_take_idle(L, m);
  struct curl_slist *headers = build_headers(L, 5, x);
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->refs);
  lua_pushvalue(L, 2);
  x->id_ref = luaL_ref(L, -2);
  if (r.post) {
    lua_pushvalue(L, 6); /* libcurl reads the body from this string while the transfer runs */
    x->body_ref = luaL_ref(L, -2);
  }
  lua_pop(L, 1);
  CURLcode rc = xfer_prepare(x, headers, &m->opts, &r);
  CURLMcode mrc = rc == CURLE_OK ? curl_multi_add_handle(m->multi, x->easy) : CURLM_OK;
  if (rc != CURLE_OK || mrc != CURLM_OK) {
    multi_unref(L, m, x);
    return luaL_error(L, "cannot start the transfer: %s",
                      rc != CURLE_OK ? curl_easy_strerror(rc) : curl_multi_strerror(mrc));
  }
  list_remove(&m->idle, x);
  m->n_idle--;
  list_push(&m->active, x);
  m->n_active++;
  m->requests++;
  return 0;
}

/* Moves finished transfers from the active to the done list. No Lua. */
static void multi_collect(multi_t *m) {
  CURLMsg *msg;
  int queued;
  while ((msg = curl_multi_info_read(m->multi, &queued))) {
    if (msg->msg != CURLMSG_DONE) continue;
    char *priv = NULL;
    CURLcode rc = msg->data.result; /* msg dies with curl_multi_remove_handle */
    CURL *e = msg->easy_handle;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    xfer *x = (xfer *)priv;
    long status = 0;
    if (rc == CURLE_OK && curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status > 0)
      memo_note(&m->memo, e); /* before the removal: the handle still knows its connection */
    curl_multi_remove_handle(m->multi, e);
    if (xfer_again(x, rc) && curl_multi_add_handle(m->multi, e) == CURLM_OK) continue;
    x->result = rc;
    list_remove(&m->active, x);
    m->n_active--;
    list_push(&m->done, x);
    m->n_done++;
  }
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* multi:poll(wait_seconds) -> array of finished results; returns as soon as one is ready or the wait is over. */
static int l_multi_poll(lua_State *L) {
  multi_t *m = check_multi(L);
  double wait = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, wait >= 0 && wait <= 86400, 2, "wait must be between 0 and 86400 seconds");
  double deadline = now_seconds() + wait;
  for (;;) {
    int running;
    CURLMcode mrc = curl_multi_perform(m->multi, &running);
    if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mrc));
    multi_collect(m);
    if (m->done || !m->active) break;
    double left = deadline - now_seconds();
    if (left <= 0) break;
    mrc = curl_multi_poll(m->multi, NULL, 0, (int)ceil(left * 1000.0), NULL);
    if (mrc != CURLM_OK) return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mrc));
  }
  lua_createtable(L, m->n_done, 0);
  int n = 0;
  while (m->done) {
    xfer *x = m->done;
    outcome_t out;
    xfer_outcome(x, x->result, 1, &out);
    lua_createtable(L, 0, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->refs);
    lua_rawgeti(L, -1, x->id_ref);
    lua_setfield(L, -3, "id");
    lua_pop(L, 1);
    if (out.status > 0) {
      lua_pushinteger(L, (lua_Integer)out.status);
      lua_setfield(L, -2, "status");
      if (x->want_headers) {
        push_headers(L, x);
        lua_setfield(L, -2, "headers");
      }
      push_body(L, x);
      lua_setfield(L, -2, "body");
    } else {
      lua_pushstring(L, out.kind);
      lua_setfield(L, -2, "err_kind");
      lua_pushstring(L, out.message);
      lua_setfield(L, -2, "err_message");
      lua_pushboolean(L, out.sent);
      lua_setfield(L, -2, "sent");
    }
    lua_rawseti(L, -2, ++n);
    /* Only now, with the result safely in Lua, is the transfer retired; an error above leaves it for the next poll. */
    m->connects += out.connects;
    multi_unref(L, m, x);
    list_remove(&m->done, x);
    m->n_done--;
    if (m->n_idle >= MULTI_MAX_IDLE) {
      xfer_destroy(x);
    } else {
      xfer_recycle(x);
      list_push(&m->idle, x);
      m->n_idle++;
    }
  }
  return 1;
}

static int l_multi_pending(lua_State *L) {
  multi_t *m = check_multi(L);
  lua_pushinteger(L, (lua_Integer)m->n_active + m->n_done);
  return 1;
}

static int l_multi_info(lua_State *L) {
  multi_t *m = check_multi(L);
  push_info(L, m->connects, m->requests);
  return 1;
}

/* ---------------------------------------------------------------- registration */

void essbasic_open_http(lua_State *L) {
  static const luaL_Reg session_methods[] = {
      {"request", l_session_request}, {"info", l_session_info}, {"close", l_session_close}, {NULL, NULL}};
  static const luaL_Reg multi_methods[] = {{"add", l_multi_add},         {"poll", l_multi_poll},
                                           {"pending", l_multi_pending}, {"info", l_multi_info},
                                           {"close", l_multi_close},     {NULL, NULL}};
  static const luaL_Reg fns[] = {{"http_session", l_http_session}, {"http_multi", l_http_multi}, {NULL, NULL}};
  curl_init_once(L);
  essbasic_new_class(L, SESSION_MT, session_methods, l_session_close, NULL);
  essbasic_new_class(L, MULTI_MT, multi_methods, l_multi_close, NULL);
  luaL_setfuncs(L, fns, 0);
}
