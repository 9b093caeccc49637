/* The JSON codec of essbasic.core (contract: docs/internals.md, "The JSON codec").
 *
 * Both directions write into one growing buffer that starts on the C stack and, when it overflows, moves into a
 * userdata kept at a reserved stack slot: Lua owns every byte, so a Lua error (out of memory, stack overflow)
 * cannot leak anything, and a typical request body never allocates until its final lua_pushlstring.
 * Data errors never raise: they unwind the recursion with a message and the entry points return nil, message.
 * The only per-state object, the array metatable, lives in the registry and in the functions' upvalues. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "json.h"

#define ENCODE_MAX_DEPTH 100
#define DECODE_MAX_DEPTH 200
#define ERR_MAX 1024

/* ---- the growing buffer (json.h) ---- */

void essbasic_jbuf_grow(jbuf *b, size_t need) {
  size_t cap = b->cap;
  if (need > ((size_t)-1) / 4 - b->len) luaL_error(b->L, "json: buffer size overflow");
  while (cap - b->len < need) cap *= 2;
  luaL_checkstack(b->L, 1, "json buffer");
  char *np = (char *)essbasic_newuserdata(b->L, cap);
  memcpy(np, b->p, b->len);
  lua_replace(b->L, b->slot); /* the old userdata, if any, becomes garbage */
  b->p = np;
  b->cap = cap;
}

/* Bounded append for error messages: silently truncates. */
static void err_add(char *err, size_t *n, const char *s, size_t len) {
  size_t room = ERR_MAX - 1 - *n;
  if (len > room) len = room;
  memcpy(err + *n, s, len);
  *n += len;
  err[*n] = '\0';
}

/* ---- encoder ---- */

typedef struct {
  const char *key; /* NULL: an array index */
  size_t klen;
  size_t index;
} pathseg;

typedef struct {
  lua_State *L;
  jbuf b;
  int depth;
  int mt_slot, list_slot, fields_slot; /* the array metatable and the strings "list" and "fields" */
  int npath;
  pathseg path[ENCODE_MAX_DEPTH + 4];
  char err[ERR_MAX];
} encoder;

/* 0: copied as is; otherwise the letter after the backslash ('u' for \u00XX). */
static const char escape_of[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20-0x2f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0, /* 0x50-0x5f */
};

static int enc_fail(encoder *e, const char *problem) {
  size_t n = 0;
  char num[32];
  e->err[0] = '\0';
  err_add(e->err, &n, problem, strlen(problem));
  if (e->npath == 0) {
    err_add(e->err, &n, " at top level", 13);
    return -1;
  }
  err_add(e->err, &n, " at ", 4);
  for (int i = 0; i < e->npath; i++) {
    const pathseg *s = &e->path[i];
    if (s->key) {
      if (i > 0) err_add(e->err, &n, ".", 1);
      if (s->klen > 64) {
        err_add(e->err, &n, s->key, 64);
        err_add(e->err, &n, "...", 3);
      } else {
        err_add(e->err, &n, s->key, s->klen);
      }
    } else {
      int k = snprintf(num, sizeof num, "[%zu]", s->index);
      err_add(e->err, &n, num, (size_t)k);
    }
  }
  return -1;
}

static inline void path_push_key(encoder *e, const char *key, size_t klen) {
  pathseg *s = &e->path[e->npath++];
  s->key = key;
  s->klen = klen;
}

static inline void path_push_index(encoder *e, size_t index) {
  pathseg *s = &e->path[e->npath++];
  s->key = NULL;
  s->index = index;
}

/* Whether any of the 8 bytes in x needs escaping: a control byte (< 0x20), '"' or '\\' (bytes >= 0x80 are copied
 * as they are). The classic word-at-a-time tests; a false alarm only sends the block to the byte loop. */
static inline int needs_escape8(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t quote = x ^ (ones * '"'), bslash = x ^ (ones * '\\');
  uint64_t low = (x - ones * 0x20) & ~x;
  uint64_t zq = (quote - ones) & ~quote, zb = (bslash - ones) & ~bslash;
  return ((low | zq | zb) & highs) != 0;
}

/* Length of the prefix of [p, end) that is copied without escapes: 8 bytes at a time, then byte by byte. */
static inline size_t plain_run(const unsigned char *p, const unsigned char *end) {
  const unsigned char *start = p;
  while (end - p >= 8) {
    uint64_t x;
    memcpy(&x, p, 8);
    if (needs_escape8(x)) break;
    p += 8;
  }
  while (p < end && escape_of[*p] == 0) p++;
  return (size_t)(p - start);
}

void essbasic_json_string(jbuf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  /* reserve the worst case once for short strings (nearly all), what is plain plus room for one escape for long
   * ones (whose escapes are rare) */
  jbuf_need(b, len <= 512 ? len * 6 + 2 : len + 8);
  b->p[b->len++] = '"';
  for (;;) {
    size_t run = plain_run(p, end);
    if (run) {
      jbuf_add(b, (const char *)p, run);
      p += run;
    }
    if (p == end) break;
    char esc = escape_of[*p];
    jbuf_need(b, 6 + (size_t)(end - p)); /* usually enough for the rest in one go */
    char *q = b->p + b->len;
    if (esc == 'u') {
      memcpy(q, "\\u00", 4); /* NOLINT(bugprone-not-null-terminated-result): 4 bytes into JSON text, no C string */
      q[4] = hex[*p >> 4];
      q[5] = hex[*p & 15];
      b->len += 6;
    } else {
      q[0] = '\\';
      q[1] = esc;
      b->len += 2;
    }
    p++;
  }
  jbuf_addc(b, '"');
}

static void enc_integer(jbuf *b, long long v) {
  char tmp[24];
  char *q = tmp + sizeof tmp;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--q = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--q = '-';
  jbuf_add(b, q, (size_t)(tmp + sizeof tmp - q));
}

/* The shortest of %.15g..%.17g that reads back as the same double. printf and strtod both follow LC_NUMERIC, so the
 * round-trip test runs in the locale's own notation and the decimal separator is turned into '.' afterwards. */
static void enc_float(jbuf *b, double d) {
  char tmp[40];
  int n = 0;
  for (int prec = 15; prec <= 17; prec++) {
    n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (prec == 17 || strtod(tmp, NULL) == d) break;
  }
  jbuf_need(b, (size_t)n);
  int dot_done = 0;
  for (int i = 0; i < n; i++) {
    char c = tmp[i];
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
      b->p[b->len++] = c;
    } else if (!dot_done) { /* first byte of the locale's decimal separator */
      b->p[b->len++] = '.';
      dot_done = 1;
    }
  }
}

void essbasic_json_number(jbuf *b, lua_State *L, int idx) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    enc_integer(b, (long long)lua_tointeger(L, idx));
    return;
  }
#endif
  double d = (double)lua_tonumber(L, idx);
  if (d == floor(d) && fabs(d) < 9007199254740992.0) {
    enc_integer(b, (long long)d);
  } else {
    enc_float(b, d);
  }
}

static int enc_number(encoder *e, int idx) {
  double d = (double)lua_tonumber(e->L, idx);
  if (d != d) return enc_fail(e, "cannot encode NaN");
  if (isinf(d)) return enc_fail(e, d > 0 ? "cannot encode inf" : "cannot encode -inf");
  essbasic_json_number(&e->b, e->L, idx);
  return 0;
}

/* An array index key: a positive integer (any integral double on LuaJIT, up to 2^53). */
static int index_key(lua_State *L, int idx, size_t *out) {
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
#if LUA_VERSION_NUM >= 503
  if (!lua_isinteger(L, idx)) return 0;
  lua_Integer i = lua_tointeger(L, idx);
  if (i < 1) return 0;
  *out = (size_t)i;
  return 1;
#else
  lua_Number n = lua_tonumber(L, idx);
  if (!(n >= 1 && n <= 9007199254740992.0 && n == floor(n))) return 0;
  *out = (size_t)n;
  return 1;
#endif
}

/* ---- lua-cjson interop (json.h) ---- */

/* 1 when the value at idx is rawequal to field `name` of a loaded cjson module. */
static int is_cjson_field(lua_State *L, int idx, const char *name) {
  static const char *const modules[] = {"cjson", "cjson.safe"};
  int found = 0;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 3, "json");
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  for (size_t i = 0; !found && i < sizeof modules / sizeof modules[0]; i++) {
    if (lua_type(L, -1) != LUA_TTABLE) break;
    lua_getfield(L, -1, modules[i]);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushstring(L, name);
      lua_rawget(L, -2);
      found = !lua_isnil(L, -1) && lua_rawequal(L, -1, idx);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found;
}

int essbasic_json_is_empty_array(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) != NULL &&
         is_cjson_field(L, idx, "empty_array");
}

int essbasic_json_is_cjson_array(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  int yes = is_cjson_field(L, -1, "array_mt") || is_cjson_field(L, -1, "empty_array_mt");
  lua_pop(L, 1);
  return yes;
}

static int enc_value(encoder *e, int idx, int hint, int desc);

/* Pushes desc[name] (name being the string at stack slot name_slot) and returns its slot if it is a table;
 * otherwise pushes nothing and returns 0. */
static int desc_table(encoder *e, int desc, int name_slot) {
  lua_pushvalue(e->L, name_slot);
  lua_rawget(e->L, desc);
  if (lua_type(e->L, -1) == LUA_TTABLE) return lua_gettop(e->L);
  lua_pop(e->L, 1);
  return 0;
}

static int enc_array(encoder *e, int idx, int hint) {
  lua_State *L = e->L;
  size_t n = 0, max = 0, k;
  int has_string = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (index_key(L, -1, &k)) {
      n++;
      if (k > max) max = k;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      has_string = 1;
    } else {
      char msg[96];
      snprintf(msg, sizeof msg, "table has a key of type %s (only string keys or array indexes 1..n)",
               lua_typename(L, lua_type(L, -1)));
      return enc_fail(e, msg);
    }
  }
  if (has_string) {
    return enc_fail(e, n ? "table mixes string keys and array indexes"
                         : "table marked as an array has string keys");
  }
  if (max != n) { /* a hole: the first missing index is at most n + 1 */
    for (k = 1; k <= n + 1; k++) {
      lua_rawgeti(L, idx, (int)k);
      int missing = lua_isnil(L, -1);
      lua_pop(L, 1);
      if (missing) break;
    }
    path_push_index(e, k);
    return enc_fail(e, "sparse array: missing element (use json.null for null)");
  }
  jbuf_addc(&e->b, '[');
  for (k = 1; k <= n; k++) {
    if (k > 1) jbuf_addc(&e->b, ',');
    lua_rawgeti(L, idx, (int)k);
    path_push_index(e, k);
    if (enc_value(e, lua_gettop(L), hint, 0)) return -1;
    e->npath--;
    lua_pop(L, 1);
  }
  jbuf_addc(&e->b, ']');
  return 0;
}

/* Called with the table's first key and value on the stack (the key is a string). */
static int enc_object(encoder *e, int idx, int hint) {
  lua_State *L = e->L;
  int first = 1;
  jbuf_addc(&e->b, '{');
  do {
    int vidx = lua_gettop(L), kidx = vidx - 1;
    if (lua_type(L, kidx) != LUA_TSTRING) {
      size_t k;
      if (index_key(L, kidx, &k)) return enc_fail(e, "table mixes string keys and array indexes");
      char msg[96];
      snprintf(msg, sizeof msg, "object has a key of type %s (only string keys)", lua_typename(L, lua_type(L, kidx)));
      return enc_fail(e, msg);
    }
    if (essbasic_json_is_null(L, vidx)) { /* a null member is absent, as the decoder reads it (cjson.null too) */
      lua_settop(L, kidx);
      continue;
    }
    size_t klen;
    const char *key = lua_tolstring(L, kidx, &klen);
    if (!first) jbuf_addc(&e->b, ',');
    first = 0;
    essbasic_json_string(&e->b, key, klen);
    jbuf_addc(&e->b, ':');
    path_push_key(e, key, klen);
    int desc = 0;
    if (hint && lua_type(L, vidx) == LUA_TTABLE) desc = desc_table(e, hint, kidx);
    if (enc_value(e, vidx, 0, desc)) return -1;
    e->npath--;
    lua_settop(L, kidx);
  } while (lua_next(L, idx));
  jbuf_addc(&e->b, '}');
  return 0;
}

/* hint: stack slot of the struct's fields (for an array: its elements' fields), or 0.
 * desc: stack slot of this value's field description, or 0; its `fields` becomes the hint and its `list` makes an
 * empty table []. Both are looked up only when needed: `list` for empty tables, `fields` for the others. */
static int enc_table(encoder *e, int idx, int hint, int desc) {
  lua_State *L = e->L;
  int rc, is_array = 0, top = lua_gettop(L);
  if (e->depth >= ENCODE_MAX_DEPTH) return enc_fail(e, "nested too deep (cycle?)");
  e->depth++;
  luaL_checkstack(L, 8, "json_encode");
  if (lua_getmetatable(L, idx)) {
    is_array = lua_rawequal(L, -1, e->mt_slot);
    lua_pop(L, 1);
    if (!is_array) is_array = essbasic_json_is_cjson_array(L, idx);
  }
  if (is_array) {
    if (desc) hint = desc_table(e, desc, e->fields_slot);
    rc = enc_array(e, idx, hint);
  } else {
    lua_pushnil(L);
    if (!lua_next(L, idx)) {
      int list = 0;
      if (desc) {
        lua_pushvalue(L, e->list_slot);
        lua_rawget(L, desc);
        list = lua_toboolean(L, -1);
        lua_pop(L, 1);
      }
      jbuf_add(&e->b, list ? "[]" : "{}", 2);
      rc = 0;
    } else {
      if (desc && (hint = desc_table(e, desc, e->fields_slot)) != 0) {
        lua_insert(L, -3); /* below the first key and value, which enc_object expects on top */
        hint -= 2;
      }
      if (lua_type(L, -2) == LUA_TSTRING) {
        rc = enc_object(e, idx, hint);
      } else {
        lua_pop(L, 2);
        rc = enc_array(e, idx, hint);
      }
    }
  }
  e->depth--;
  lua_settop(L, top);
  return rc;
}

static int enc_value(encoder *e, int idx, int hint, int desc) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    essbasic_json_string(&e->b, s, len);
    return 0;
  }
  case LUA_TNUMBER:
    return enc_number(e, idx);
  case LUA_TTABLE:
    return enc_table(e, idx, hint, desc);
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) jbuf_add(&e->b, "true", 4);
    else jbuf_add(&e->b, "false", 5);
    return 0;
  case LUA_TNIL:
    jbuf_add(&e->b, "null", 4);
    return 0;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { /* json.null, cjson.null */
      jbuf_add(&e->b, "null", 4);
      return 0;
    }
    if (essbasic_json_is_empty_array(L, idx)) {
      jbuf_add(&e->b, "[]", 2);
      return 0;
    }
    return enc_fail(e, "cannot encode a light userdata other than json.null or cjson.empty_array");
  default: {
    char msg[64];
    snprintf(msg, sizeof msg, "cannot encode a value of type %s", lua_typename(L, lua_type(L, idx)));
    return enc_fail(e, msg);
  }
  }
}

static int l_json_encode(lua_State *L) {
  encoder e;
  char initial[8192];
  luaL_checkany(L, 1);
  int t = lua_type(L, 2);
  luaL_argcheck(L, t == LUA_TNONE || t == LUA_TNIL || t == LUA_TTABLE, 2, "hint must be a table or nil");
  lua_settop(L, 2);
  lua_pushnil(L); /* 3: buffer slot */
  lua_pushvalue(L, lua_upvalueindex(1)); /* 4 */
  lua_pushliteral(L, "list");            /* 5 */
  lua_pushliteral(L, "fields");          /* 6 */
  e.L = L;
  jbuf_init(&e.b, L, 3, initial, sizeof initial);
  e.depth = 0;
  e.npath = 0;
  e.mt_slot = 4;
  e.list_slot = 5;
  e.fields_slot = 6;
  if (enc_value(&e, 1, t == LUA_TTABLE ? 2 : 0, 0)) {
    lua_settop(L, 0);
    lua_pushnil(L);
    lua_pushstring(L, e.err);
    return 2;
  }
  lua_pushlstring(L, e.b.p, e.b.len);
  return 1;
}

/* ---- decoder ---- */

typedef struct {
  lua_State *L;
  const unsigned char *s, *p, *end;
  int depth;
  int mt_slot;
  jbuf b;
  char err[160];
} decoder;

static int dec_fail_at(decoder *d, const unsigned char *at, const char *problem) {
  snprintf(d->err, sizeof d->err, "%s at byte %zu", problem, (size_t)(at - d->s) + 1);
  return -1;
}

static int dec_unexpected(decoder *d, const char *expected) {
  char msg[96];
  if (d->p >= d->end) {
    snprintf(msg, sizeof msg, "unexpected end of input, expected %s", expected);
  } else if (*d->p >= 0x21 && *d->p < 0x7f) {
    snprintf(msg, sizeof msg, "unexpected '%c', expected %s", *d->p, expected);
  } else {
    snprintf(msg, sizeof msg, "unexpected byte 0x%02x, expected %s", *d->p, expected);
  }
  return dec_fail_at(d, d->p, msg);
}

static inline void skip_ws(decoder *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t')) d->p++;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits at p (p + 4 <= end is checked by the caller), or -1. */
static long hex4(const unsigned char *p) {
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

static void add_utf8(jbuf *b, unsigned long cp) {
  jbuf_need(b, 4);
  char *q = b->p + b->len;
  if (cp < 0x80) {
    q[0] = (char)cp;
    b->len += 1;
  } else if (cp < 0x800) {
    q[0] = (char)(0xc0 | (cp >> 6));
    q[1] = (char)(0x80 | (cp & 0x3f));
    b->len += 2;
  } else if (cp < 0x10000) {
    q[0] = (char)(0xe0 | (cp >> 12));
    q[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    q[2] = (char)(0x80 | (cp & 0x3f));
    b->len += 3;
  } else {
    q[0] = (char)(0xf0 | (cp >> 18));
    q[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    q[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    q[3] = (char)(0x80 | (cp & 0x3f));
    b->len += 4;
  }
}

/* 1 for bytes that end a plain run inside a string: '"', '\\' and control characters. */
static const char string_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* d->p at the opening quote; pushes the string. */
static int dec_string(decoder *d) {
  const unsigned char *p = d->p + 1, *end = d->end;
  const unsigned char *run = p;
  while (p < end && !string_stop[*p]) p++;
  if (p < end && *p == '"') { /* no escapes: straight from the input */
    lua_pushlstring(d->L, (const char *)run, (size_t)(p - run));
    d->p = p + 1;
    return 0;
  }
  jbuf *b = &d->b;
  b->len = 0;
  for (;;) {
    if (p > run) jbuf_add(b, (const char *)run, (size_t)(p - run));
    if (p >= end) return dec_fail_at(d, d->p, "unterminated string");
    if (*p == '"') break;
    if (*p < 0x20) return dec_fail_at(d, p, "control character in string");
    /* a backslash */
    const unsigned char *esc = p;
    if (++p >= end) return dec_fail_at(d, d->p, "unterminated string");
    char c;
    switch (*p) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': {
      long cp = end - p > 4 ? hex4(p + 1) : -1;
      if (cp < 0) return dec_fail_at(d, esc, "invalid \\u escape");
      p += 5;
      if (cp >= 0xdc00 && cp <= 0xdfff) return dec_fail_at(d, esc, "lone low surrogate in \\u escape");
      if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = (end - p > 5 && p[0] == '\\' && p[1] == 'u') ? hex4(p + 2) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return dec_fail_at(d, esc, "lone high surrogate in \\u escape");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
      }
      add_utf8(b, (unsigned long)cp);
      run = p;
      goto next_run;
    }
    default:
      return dec_fail_at(d, esc, "invalid escape in string");
    }
    jbuf_addc(b, c);
    run = ++p;
  next_run:
    while (p < end && !string_stop[*p]) p++;
  }
  lua_pushlstring(d->L, b->p, b->len);
  d->p = p + 1;
  return 0;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* strtod on a private NUL-terminated copy whose '.' is the locale's decimal separator (the grammar is already
 * checked, so strtod sees only what JSON allows). */
static double slow_strtod(decoder *d, const unsigned char *start, const unsigned char *stop) {
  const char *dp = localeconv()->decimal_point;
  size_t dplen = dp ? strlen(dp) : 0;
  jbuf *b = &d->b;
  b->len = 0;
  for (const unsigned char *q = start; q < stop; q++) {
    if (*q == '.' && dplen && !(dplen == 1 && dp[0] == '.')) jbuf_add(b, dp, dplen);
    else jbuf_addc(b, (char)*q);
  }
  jbuf_addc(b, '\0');
  return strtod(b->p, NULL);
}

static int dec_number(decoder *d) {
  const unsigned char *start = d->p, *p = d->p, *end = d->end;
  int neg = 0, sig = 0, overflow = 0, frac_digits = 0, is_int = 1;
  uint64_t m = 0;
  long exp10 = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  if (p >= end || *p < '0' || *p > '9') return dec_fail_at(d, start, "invalid number");
  if (*p == '0') {
    p++;
  } else {
    while (p < end && *p >= '0' && *p <= '9') {
      if (sig < 19) m = m * 10 + (uint64_t)(*p - '0');
      else overflow = 1;
      if (m) sig++;
      p++;
    }
  }
  if (p < end && *p == '.') {
    is_int = 0;
    p++;
    if (p >= end || *p < '0' || *p > '9') return dec_fail_at(d, start, "invalid number");
    while (p < end && *p >= '0' && *p <= '9') {
      if (sig < 19) {
        m = m * 10 + (uint64_t)(*p - '0');
        frac_digits++;
        if (m) sig++;
      } else {
        overflow = 1;
      }
      p++;
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    int eneg = 0;
    long ev = 0;
    is_int = 0;
    p++;
    if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
    if (p >= end || *p < '0' || *p > '9') return dec_fail_at(d, start, "invalid number");
    while (p < end && *p >= '0' && *p <= '9') {
      if (ev < 100000) ev = ev * 10 + (*p - '0');
      p++;
    }
    exp10 = eneg ? -ev : ev;
  }
  d->p = p;
  if (is_int && !overflow) {
    /* up to 19 digits: below 10^19 < 2^64; int64 holds up to 2^63 - 1 (and -2^63) */
    if (neg ? m <= (uint64_t)1 << 63 : m <= (uint64_t)INT64_MAX) {
      int64_t v = neg ? (int64_t)(0 - m) : (int64_t)m;
#if LUA_VERSION_NUM >= 503
      lua_pushinteger(d->L, (lua_Integer)v);
#else
      lua_pushnumber(d->L, (lua_Number)v); /* int64 to double rounds correctly */
#endif
      return 0;
    }
  }
  double v;
  exp10 -= frac_digits;
  if (!overflow && m == 0) {
    v = 0.0;
  } else if (!overflow && m <= ((uint64_t)1 << 53) && exp10 >= -22 && exp10 <= 22) {
    /* both operands exact, so the one rounding of * or / gives the correctly rounded result */
    v = exp10 < 0 ? (double)m / pow10_exact[-exp10] : (double)m * pow10_exact[exp10];
  } else {
    v = slow_strtod(d, neg ? start + 1 : start, p);
    if (isinf(v)) return dec_fail_at(d, start, "number out of range");
  }
  lua_pushnumber(d->L, (lua_Number)(neg ? -v : v));
  return 0;
}

static int dec_value(decoder *d);

/* Pushes the value; a null is pushed as json_null and reported with 1. */
static int dec_object(decoder *d) {
  lua_State *L = d->L;
  const unsigned char *open = d->p;
  if (++d->depth > DECODE_MAX_DEPTH) return dec_fail_at(d, open, "nesting deeper than 200");
  luaL_checkstack(L, 4, "json_decode");
  lua_newtable(L);
  d->p++;
  skip_ws(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    d->depth--;
    return 0;
  }
  for (;;) {
    if (d->p >= d->end || *d->p != '"') return dec_unexpected(d, "a string key");
    if (dec_string(d)) return -1;
    skip_ws(d);
    if (d->p >= d->end || *d->p != ':') return dec_unexpected(d, "':'");
    d->p++;
    int rc = dec_value(d);
    if (rc < 0) return -1;
    if (rc == 1) { /* null member: the key is absent (and a null after a duplicate key removes it) */
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      int present = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (present) {
        lua_pushnil(L);
        lua_rawset(L, -3);
      } else {
        lua_pop(L, 1);
      }
    } else {
      lua_rawset(L, -3);
    }
    skip_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      skip_ws(d);
      continue;
    }
    if (d->p < d->end && *d->p == '}') break;
    return dec_unexpected(d, "',' or '}'");
  }
  d->p++;
  d->depth--;
  return 0;
}

static int dec_array(decoder *d) {
  lua_State *L = d->L;
  const unsigned char *open = d->p;
  if (++d->depth > DECODE_MAX_DEPTH) return dec_fail_at(d, open, "nesting deeper than 200");
  luaL_checkstack(L, 4, "json_decode");
  lua_newtable(L);
  lua_pushvalue(L, d->mt_slot);
  lua_setmetatable(L, -2);
  d->p++;
  skip_ws(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    d->depth--;
    return 0;
  }
  int n = 0;
  for (;;) {
    if (dec_value(d) < 0) return -1;
    lua_rawseti(L, -2, ++n);
    skip_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      continue;
    }
    if (d->p < d->end && *d->p == ']') break;
    return dec_unexpected(d, "',' or ']'");
  }
  d->p++;
  d->depth--;
  return 0;
}

static int dec_literal(decoder *d, const char *word, size_t len) {
  if ((size_t)(d->end - d->p) < len || memcmp(d->p, word, len) != 0) return dec_unexpected(d, "a value");
  d->p += len;
  return 0;
}

static int dec_value(decoder *d) {
  skip_ws(d);
  if (d->p >= d->end) return dec_unexpected(d, "a value");
  switch (*d->p) {
  case '{':
    return dec_object(d);
  case '[':
    return dec_array(d);
  case '"':
    return dec_string(d);
  case 't':
    if (dec_literal(d, "true", 4)) return -1;
    lua_pushboolean(d->L, 1);
    return 0;
  case 'f':
    if (dec_literal(d, "false", 5)) return -1;
    lua_pushboolean(d->L, 0);
    return 0;
  case 'n':
    if (dec_literal(d, "null", 4)) return -1;
    lua_pushlightuserdata(d->L, NULL);
    return 1;
  default:
    if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) return dec_number(d);
    return dec_unexpected(d, "a value");
  }
}

static int l_json_decode(lua_State *L) {
  decoder d;
  char initial[1024];
  size_t len;
  luaL_checktype(L, 1, LUA_TSTRING);
  const char *s = lua_tolstring(L, 1, &len);
  lua_settop(L, 1);
  lua_pushnil(L);                        /* 2: buffer slot */
  lua_pushvalue(L, lua_upvalueindex(1)); /* 3: array metatable */
  d.L = L;
  d.s = d.p = (const unsigned char *)s;
  d.end = d.s + len;
  d.depth = 0;
  d.mt_slot = 3;
  jbuf_init(&d.b, L, 2, initial, sizeof initial);
  skip_ws(&d);
  if (d.p == d.end) {
    dec_fail_at(&d, d.p, "empty input");
  } else if (dec_value(&d) >= 0) {
    skip_ws(&d);
    if (d.p == d.end) return 1; /* a top-level null comes back as json_null */
    dec_fail_at(&d, d.p, "unexpected data after the value");
  }
  lua_settop(L, 0);
  lua_pushnil(L);
  lua_pushstring(L, d.err);
  return 2;
}

void essbasic_open_json(lua_State *L) {
  static const luaL_Reg fns[] = {{"json_encode", l_json_encode}, {"json_decode", l_json_decode}, {NULL, NULL}};
  /* one metatable per lua_State, shared by every load of the module in that state */
  luaL_newmetatable(L, JSON_ARRAY_MT);
  lua_pushliteral(L, JSON_ARRAY_MT);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "json_array_mt");
  luaL_setfuncs(L, fns, 1);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "json_null");
}
