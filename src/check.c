/* The validator's fast path: one C walk that answers "does this request pass every rule?" with yes or no, and
 * with encode writes the JSON of what passed on the same walk. lua/essbasic/validate/checker.lua describes
 * rules.lua's data for a checker built once; a request it refuses goes to the Lua walk, which names the problems,
 * so this walk must refuse exactly what that one refuses (spec/validate_fast_spec.lua, fuzz/fuzz_validate.lua).
 * Formats arrive as data and are compiled here by kind (FORMAT_KINDS). The design is told once, in
 * docs/internals.md ("Validation").
 *
 * Also core.utf8_len, the one definition of "text" (valid UTF-8 without NUL) for the validator and the builders.
 *
 * The compiled schema lives in one userdata (no malloc, nothing to free); the Lua values it refers to (member
 * lookup tables and names, enum sets) sit in a refs table. Both are upvalues of the checker. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core.h"
#include "json.h"

#define TWO53 9007199254740992.0

enum { K_STRING, K_INT, K_UINT, K_FLOAT, K_BOOL, K_STRUCT };

/* The kinds of rules.lua's formats (rules.lua says what each means; validate_fast_spec holds the two walks to the
 * same answers). */
enum { FK_SHAPE, FK_WHOLE_RANGE };
static const char *const FORMAT_KINDS[] = {"shape", "whole_range", NULL};

#define SHAPE_MAX 32 /* positions of a shape format */

typedef struct {
  unsigned char kind;
  unsigned char len;                        /* FK_SHAPE: the string's length */
  unsigned char classes[SHAPE_MAX][256 / 8]; /* FK_SHAPE: per position, the set of bytes allowed there */
  lua_Number min, max;                      /* FK_WHOLE_RANGE */
} cformat;

typedef struct {
  unsigned char kind, list, disabled, forbidden, required, allow_zero, has_min, has_max;
  int format;               /* 1-based index in the schema's formats; 0: none */
  int max_chars, min_chars, min_items, max_items; /* -1: no limit */
  lua_Number min, max;
  int enum_ref;             /* index of the enum set in the refs table; 0: none */
  int struct_index;         /* K_STRUCT: 0-based index of the member's structure */
  const char *key_json;     /* "Name": as the encoder writes it (kept alive in the refs table) */
  size_t key_json_len;
} cfield;

/* Member names by the address of their string's bytes. Lua interns short strings (5.4: up to 40 bytes; LuaJIT:
 * all), so a key equal to a member name is, in practice, the very string the lookup table holds, and finding it
 * costs one lua_tolstring and a probe instead of a push, a table get and a pop. A miss proves nothing (a long
 * name is not interned): the lookup table answers then. The names stay alive in the refs table. */
typedef struct {
  const char *name; /* NULL: empty slot */
  int field;
} nslot;

typedef struct {
  int lookup_ref; /* refs[lookup_ref] = { member name = 0-based index in fields } */
  /* rules.lua's format_by structure check: refs of the type and number member names and of the map from type
   * value to format index; the format index of an absent type; by_ref 0: none */
  int by_type_ref, by_number_ref, by_ref, by_default;
  int one_of_ref; /* refs[one_of_ref] = { { member name, ... }, ... }: rules.actions' one-of groups; 0: none */
  int nrequired;
  unsigned mask;  /* slots - 1 (a power of two) */
  nslot *slots;
} cstruct;

typedef struct {
  int nstructs, nfields, nformats, max_depth;
  cstruct *structs;
  cfield *fields;
  cformat *formats;
} cschema;

static unsigned slot_of(const char *name, unsigned mask) {
  uintptr_t a = (uintptr_t)name;
  return (unsigned)((a >> 4) ^ (a >> 12)) & mask;
}

/* The member called `key` (the bytes of a Lua string at stack index kidx) → its index in fields, or -1. */
static int member_index(lua_State *L, const cstruct *st, const char *key, int kidx, int lookup) {
  for (unsigned i = slot_of(key, st->mask);; i = (i + 1) & st->mask) {
    const nslot *sl = &st->slots[i];
    if (sl->name == key) return sl->field;
    if (sl->name == NULL) break;
  }
  lua_pushvalue(L, kidx);
  lua_rawget(L, lookup);
  int f = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  return f;
}

/* ---- UTF-8 text ---- */

/* Number of characters of s, or -1 for a NUL byte (anywhere: it wins over invalid UTF-8), -2 for invalid UTF-8
 * (overlong forms, surrogates, values above U+10FFFF, stray or missing continuation bytes): the same rules as
 * Lua 5.4's strict utf8.len. */
static ptrdiff_t text_len(const unsigned char *s, size_t len) {
  size_t i = 0, cont = 0;
  if (memchr(s, 0, len)) return -1;
  while (i < len) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned long cp, lo;
    if (c < 0xC2) return -2;
    if (c < 0xE0) {
      need = 1, cp = c - 0xC0, lo = 0x80;
    } else if (c < 0xF0) {
      need = 2, cp = c - 0xE0, lo = 0x800;
    } else if (c < 0xF5) {
      need = 3, cp = c - 0xF0, lo = 0x10000;
    } else {
      return -2;
    }
    if (len - i <= need) return -2;
    for (size_t k = 1; k <= need; k++) {
      unsigned b = s[i + k];
      if (b < 0x80 || b > 0xBF) return -2;
      cp = cp * 64 + (b - 0x80);
    }
    if (cp < lo || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -2;
    cont += need;
    i += need + 1;
  }
  return (ptrdiff_t)(len - cont);
}

/* core.utf8_len(s) → number of characters, or nil and "NUL byte" / "invalid UTF-8". */
static int l_utf8_len(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  ptrdiff_t n = text_len((const unsigned char *)s, len);
  if (n >= 0) {
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
  }
  lua_pushnil(L);
  if (n == -1) {
    lua_pushliteral(L, "NUL byte");
  } else {
    lua_pushliteral(L, "invalid UTF-8");
  }
  return 2;
}

/* ---- formats (rules.lua's, compiled by kind) ---- */

/* Whether the value at idx passes format fmt. */
static int format_passes(lua_State *L, const cformat *fmt, int idx) {
  int t = lua_type(L, idx);
  switch (fmt->kind) {
  case FK_SHAPE: {
    if (t != LUA_TSTRING) return 0;
    size_t len;
    const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &len);
    if (len != fmt->len) return 0;
    for (size_t i = 0; i < len; i++) {
      if (!(fmt->classes[i][s[i] >> 3] & (1u << (s[i] & 7)))) return 0;
    }
    return 1;
  }
  case FK_WHOLE_RANGE: {
    int isnum = 0;
    if (t != LUA_TNUMBER && t != LUA_TSTRING) return 0;
    lua_Number n = lua_tonumberx(L, idx, &isnum); /* reads a string as tonumber() does; the value stays as it is */
    return isnum && n == floor(n) && n >= fmt->min && n <= fmt->max;
  }
  default:
    return 0; /* not reached: schema_checker refuses other kinds */
  }
}

static void class_add(unsigned char *cls, unsigned lo, unsigned hi) {
  for (unsigned c = lo; c <= hi; c++) cls[c >> 3] |= (unsigned char)(1u << (c & 7));
}

/* Compiles a shape (rules.lua: literals, %d, and sets [...] of literals, %d and ranges, one class per position)
 * into fmt; raises on anything else, so the Lua pattern and this reading cannot drift apart silently. */
static void compile_shape(lua_State *L, cformat *fmt, const char *name, const char *p) {
  static const char MAGIC[] = "^$()%.[]*+-?";
  int n = 0;
  while (*p) {
    if (n == SHAPE_MAX) luaL_error(L, "schema_checker: format %s: shape longer than %d", name, SHAPE_MAX);
    unsigned char *cls = fmt->classes[n++];
    if (p[0] == '%' && p[1] == 'd') {
      class_add(cls, '0', '9');
      p += 2;
    } else if (*p == '[') {
      p++;
      while (*p && *p != ']') {
        if (p[0] == '%' && p[1] == 'd') {
          class_add(cls, '0', '9');
          p += 2;
        } else if (strchr(MAGIC, *p)) {
          luaL_error(L, "schema_checker: format %s: '%c' in a set is not understood", name, *p);
        } else if (p[1] == '-' && p[2] && p[2] != ']') {
          class_add(cls, (unsigned char)p[0], (unsigned char)p[2]);
          p += 3;
        } else {
          class_add(cls, (unsigned char)*p, (unsigned char)*p);
          p++;
        }
      }
      if (*p != ']') luaL_error(L, "schema_checker: format %s: unclosed set", name);
      p++;
    } else if (strchr(MAGIC, *p)) {
      luaL_error(L, "schema_checker: format %s: '%c' is not understood in a shape", name, *p);
    } else {
      class_add(cls, (unsigned char)*p, (unsigned char)*p);
      p++;
    }
  }
  fmt->len = (unsigned char)n;
}

/* ---- the walk ---- */

typedef struct {
  lua_State *L;
  const cschema *S;
  int refs;     /* stack index of the refs table */
  int array_mt; /* stack index of the array metatable (or nil) */
  jbuf *out;    /* where the JSON of what passed is written; NULL: checking only */
  int *disabled_seen; /* set when a member the schema marks disabled carries a value */
} walk;

static int check_struct(const walk *w, int si, int t, int depth);

/* A table marked as a list: json.array's metatable, or lua-cjson's array_mt / empty_array_mt. */
static int is_array_mt(const walk *w, int idx) {
  lua_State *L = w->L;
  if (!lua_getmetatable(L, idx)) return 0;
  int same = lua_rawequal(L, -1, w->array_mt);
  lua_pop(L, 1);
  return same || essbasic_json_is_cjson_array(L, idx);
}

static int in_enum(const walk *w, int ref, int idx) {
  lua_State *L = w->L;
  lua_rawgeti(L, w->refs, ref);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  int ok = !lua_isnil(L, -1);
  lua_pop(L, 2);
  return ok;
}

/* The JSON of a string that passed. */
static int put_string(const walk *w, const char *s, size_t len) {
  if (w->out) essbasic_json_string(w->out, s, len);
  return 1;
}

/* The JSON of a scalar that passed: the bytes json.encode writes for it. */
static int put_scalar(const walk *w, int v) {
  jbuf *b = w->out;
  if (!b) return 1;
  switch (lua_type(w->L, v)) {
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(w->L, v, &len);
    return put_string(w, s, len);
  }
  case LUA_TNUMBER:
    essbasic_json_number(b, w->L, v);
    break;
  default: /* a boolean: nothing else passes check_scalar */
    if (lua_toboolean(w->L, v)) jbuf_add(b, "true", 4);
    else jbuf_add(b, "false", 5);
  }
  return 1;
}

static int check_scalar(const walk *w, const cfield *f, int v) {
  lua_State *L = w->L;
  int vt = lua_type(L, v);
  switch (f->kind) {
  case K_STRING: {
    if (vt != LUA_TSTRING) return 0;
    size_t len;
    const char *s = lua_tolstring(L, v, &len);
    if (len == 0) return put_string(w, s, 0); /* "" is "not set"; required members are counted apart */
    if (f->max_chars >= 0 && len > 4 * (size_t)f->max_chars) return 0;
    ptrdiff_t n = text_len((const unsigned char *)s, len);
    if (n < 0) return 0;
    if (f->max_chars >= 0 && n > f->max_chars) return 0;
    if (f->min_chars >= 0 && n < f->min_chars) return 0;
    if (!f->enum_ref && !f->format) return put_string(w, s, len); /* nearly every string member */
    break;
  }
  case K_INT:
  case K_UINT: {
    if (vt != LUA_TNUMBER) return 0;
    lua_Number n = lua_tonumber(L, v);
#if LUA_VERSION_NUM >= 503
    int integral = lua_isinteger(L, v);
#else
    int integral = 0;
#endif
    /* a float is accepted when it holds an integer exactly, within the doubles' exact range */
    if (!integral && !(n == floor(n) && n >= -TWO53 && n <= TWO53)) return 0;
    if (f->kind == K_UINT && n < 0) return 0;
    if ((f->has_min && n < f->min) || (f->has_max && n > f->max)) return 0;
    break;
  }
  case K_FLOAT: {
    if (vt != LUA_TNUMBER) return 0;
    lua_Number n = lua_tonumber(L, v);
    if (n != n || n == HUGE_VAL || n == -HUGE_VAL) return 0;
    break;
  }
  default: /* K_BOOL */
    return vt == LUA_TBOOLEAN && put_scalar(w, v);
  }
  if (f->enum_ref && !in_enum(w, f->enum_ref, v)) return 0;
  if (f->format && !(f->allow_zero && vt == LUA_TNUMBER && lua_tonumber(L, v) == 0) &&
      !format_passes(L, &w->S->formats[f->format - 1], v)) {
    return 0;
  }
  return put_scalar(w, v);
}

/* A member of structure type: an object (a table, not a list). */
static int check_object(const walk *w, int si, int v, int depth) {
  lua_State *L = w->L;
  if (lua_type(L, v) != LUA_TTABLE || is_array_mt(w, v)) return 0;
  lua_rawgeti(L, v, 1);
  int listlike = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (listlike) return 0;
  return check_struct(w, si, v, depth);
}

/* A list element; null (json.null, cjson.null) is sent as null: the API documents no error for it. */
static int check_element(const walk *w, const cfield *f, int v, int depth) {
  if (essbasic_json_is_null(w->L, v)) {
    if (w->out) jbuf_add(w->out, "null", 4);
    return 1;
  }
  return f->kind == K_STRUCT ? check_object(w, f->struct_index, v, depth) : check_scalar(w, f, v);
}

/* A list member: keys 1..n without holes, within its item limits, every element checked. */
static int check_list(const walk *w, const cfield *f, int v, int depth) {
  lua_State *L = w->L;
  if (lua_type(L, v) != LUA_TTABLE) {
    /* cjson.empty_array: an empty list */
    if (!essbasic_json_is_empty_array(L, v) || f->min_items > 0) return 0;
    if (w->out) jbuf_add(w->out, "[]", 2);
    return 1;
  }
  lua_Number n = 0, maxk = 0;
  lua_pushnil(L);
  while (lua_next(L, v)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER) {
      lua_pop(L, 1);
      return 0;
    }
    lua_Number k = lua_tonumber(L, -1);
    if (!(k >= 1 && k == floor(k))) {
      lua_pop(L, 1);
      return 0;
    }
    n += 1;
    if (k > maxk) maxk = k;
  }
  if (n != maxk) return 0;
  if (f->max_items >= 0 && n > f->max_items) return 0;
  if (f->min_items >= 0 && n < f->min_items) return 0;
  lua_Integer count = (lua_Integer)n;
  if (w->out) jbuf_addc(w->out, '[');
  for (lua_Integer i = 1; i <= count; i++) {
    if (w->out && i > 1) jbuf_addc(w->out, ',');
    lua_rawgeti(L, v, i);
    int ok = check_element(w, f, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
    if (!ok) return 0;
  }
  if (w->out) jbuf_addc(w->out, ']');
  return 1;
}

/* rules.struct_checks' format_by on the table at t: when the number is a string and the type is absent (then
 * the default type) or one the check has a format for, the number must pass that format (any other type is the
 * enum's problem, not this check's). */
static int format_by_passes(const walk *w, const cstruct *st, int t) {
  lua_State *L = w->L;
  lua_rawgeti(L, w->refs, st->by_number_ref);
  lua_rawget(L, t);
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    return 1;
  }
  int fi = 0;
  lua_rawgeti(L, w->refs, st->by_type_ref);
  lua_rawget(L, t);
  if (lua_isnil(L, -1) || essbasic_json_is_null(L, -1)) { /* null: absent */
    fi = st->by_default;
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    lua_rawgeti(L, w->refs, st->by_ref);
    lua_insert(L, -2);
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TNUMBER) fi = (int)lua_tointeger(L, -1);
    lua_remove(L, -2);
  }
  int ok = fi == 0 || format_passes(L, &w->S->formats[fi - 1], lua_gettop(L) - 1);
  lua_pop(L, 2);
  return ok;
}

/* Whether the value at idx means "not set" (rules.lua's `unset`): nil, null, "" or an empty table. */
static int is_unset(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return 1;
  case LUA_TSTRING:
    return lua_rawlen(L, idx) == 0;
  case LUA_TTABLE: {
    lua_pushnil(L);
    if (!lua_next(L, idx)) return 1;
    lua_pop(L, 2);
    return 0;
  }
  default:
    return essbasic_json_is_null(L, idx);
  }
}

/* rules.actions' one-of groups on the request table at t: every group has a member that is set. */
static int one_of_passes(const walk *w, const cstruct *st, int t) {
  lua_State *L = w->L;
  lua_rawgeti(L, w->refs, st->one_of_ref);
  int groups = lua_gettop(L), ok = 1;
  lua_Integer ngroups = (lua_Integer)lua_rawlen(L, groups);
  for (lua_Integer g = 1; ok && g <= ngroups; g++) {
    lua_rawgeti(L, groups, g);
    lua_Integer nnames = (lua_Integer)lua_rawlen(L, -1);
    ok = 0;
    for (lua_Integer i = 1; !ok && i <= nnames; i++) {
      lua_rawgeti(L, -1, i);
      lua_rawget(L, t);
      ok = !is_unset(L, lua_gettop(L));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok;
}

/* A member whose value sits at index v. */
static int check_member(const walk *w, const cfield *f, int v, int depth) {
  lua_State *L = w->L;
  if (f->forbidden) return 0; /* not supported by this action: any value, even "" or {} */
  if (f->disabled) {
    /* "" and {} are how SDKs write "not set"; a real value is checked like any member's and sent, and the caller
     * is told so it can warn (docs/builders.md, "What validation refuses") */
    if (is_unset(L, v)) { /* "" or {} here: null members never reach this */
      if (lua_type(L, v) == LUA_TSTRING) return put_scalar(w, v);
      /* as json.encode writes it: [] when marked as an array or when the hint says list */
      if (w->out) jbuf_add(w->out, f->list || is_array_mt(w, v) ? "[]" : "{}", 2);
      return 1;
    }
    *w->disabled_seen = 1;
  }
  if (f->list) return check_list(w, f, v, depth);
  if (f->kind == K_STRUCT) return check_object(w, f->struct_index, v, depth);
  return check_scalar(w, f, v);
}

/* The table at index t as structure si; depth as the Lua walk counts it (a cycle ends at max_depth). */
static int check_struct(const walk *w, int si, int t, int depth) {
  lua_State *L = w->L;
  const cstruct *st = &w->S->structs[si];
  if (depth >= w->S->max_depth) return 0;
  luaL_checkstack(L, 8, "essbasic: request nested too deeply");
  lua_rawgeti(L, w->refs, st->lookup_ref);
  int lookup = lua_gettop(L), v = lookup + 2;
  int present_required = 0, first = 1;
  jbuf *out = w->out;
  if (out) jbuf_addc(out, '{');
  lua_pushnil(L);
  while (lua_next(L, t)) {
    /* stack: lookup, key, value */
    if (essbasic_json_is_null(L, v)) { /* a null member (cjson.null) is absent, as the official SDKs drop it */
      lua_settop(L, v - 1);
      continue;
    }
    if (lua_type(L, v - 1) != LUA_TSTRING) break; /* members have string names */
    int fi = member_index(L, st, lua_tostring(L, v - 1), v - 1, lookup);
    if (fi < 0) break; /* unknown member */
    const cfield *f = &w->S->fields[fi];
    if (out) {
      if (!first) jbuf_addc(out, ',');
      first = 0;
      jbuf_add(out, f->key_json, f->key_json_len);
    }
    if (f->required) {
      /* an empty string is "not set" for a string member */
      if (f->kind == K_STRING && lua_type(L, v) == LUA_TSTRING && lua_rawlen(L, v) == 0) break;
      present_required++;
    }
    if (!check_member(w, f, v, depth + 1)) break;
    lua_settop(L, v - 1);
  }
  /* after a complete traversal lua_next left only the lookup table; a break left key and value (and more) */
  if (lua_gettop(L) != lookup) {
    lua_settop(L, lookup - 1);
    return 0;
  }
  lua_pop(L, 1);
  if (present_required < st->nrequired) return 0;
  if (st->by_ref && !format_by_passes(w, st, t)) return 0;
  if (st->one_of_ref && !one_of_passes(w, st, t)) return 0;
  if (out) jbuf_addc(out, '}');
  return 1;
}

/* checker(struct_index, request [, encode]) → true when the Lua walk would find no problem in the request
 * (1-based index as given to core.schema_checker), else false. With encode, a request that passes comes back as
 * its JSON instead of true: the bytes json.encode writes for it with the request's hint, written on the same
 * walk. The second result is true when the request passed and a disabled member carries a value. Upvalues: the
 * schema userdata, the refs table. */
static int l_check(lua_State *L) {
  const cschema *S = lua_touserdata(L, lua_upvalueindex(1));
  char initial[8192];
  lua_Integer si = luaL_checkinteger(L, 1);
  luaL_argcheck(L, si >= 1 && si <= S->nstructs, 1, "no such structure");
  luaL_checktype(L, 2, LUA_TTABLE);
  int encode = lua_toboolean(L, 3);
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(2)); /* 3 */
  luaL_getmetatable(L, JSON_ARRAY_MT);   /* 4 */
  lua_pushnil(L);                        /* 5: the buffer's slot once it leaves the C stack */
  jbuf b;
  jbuf_init(&b, L, 5, initial, sizeof initial);
  int disabled_seen = 0;
  walk w = {L, S, 3, 4, encode ? &b : NULL, &disabled_seen};
  int ok = !is_array_mt(&w, 2) && check_struct(&w, (int)si - 1, 2, 0);
  if (ok && encode) {
    lua_pushlstring(L, b.p, b.len);
  } else {
    lua_pushboolean(L, ok);
  }
  lua_pushboolean(L, ok && disabled_seen);
  return 2;
}

/* ---- building the checker ---- */

static int opt_int_field(lua_State *L, int idx, const char *name, int dflt) {
  lua_getfield(L, idx, name);
  int n = lua_isnil(L, -1) ? dflt : (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return n;
}

static int bool_field(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  int b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

/* Stores the value of field `name` of the table at idx in refs (at index refs_idx) → its ref, or 0 when nil. */
static int ref_field(lua_State *L, int idx, const char *name, int refs_idx, int *nrefs) {
  lua_getfield(L, idx, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawseti(L, refs_idx, ++*nrefs);
  return *nrefs;
}

static size_t slots_for(int nmembers) {
  size_t n = 4;
  while (n < 2 * (size_t)nmembers) n *= 2;
  return n;
}

static const char *const KINDS[] = {"string", "int", "uint", "float", "bool", "struct", NULL};

/* The format index (1-based) of the format named by the string at idx, looked up in the table at names. */
static int format_index(lua_State *L, int names, int idx, const char *what) {
  lua_pushvalue(L, idx);
  lua_rawget(L, names);
  if (lua_type(L, -1) != LUA_TNUMBER) return luaL_error(L, "schema_checker: %s: unknown format %s", what,
                                                         lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "?");
  int fi = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return fi;
}

/* Compiles desc.formats (at index fd: name → { kind, shape | min, max }) into S->formats; leaves on the stack a
 * table name → 1-based index. */
static void compile_formats(lua_State *L, cschema *S, int fd) {
  lua_newtable(L);
  int names = lua_gettop(L), n = 0;
  if (lua_isnil(L, fd)) return;
  luaL_checktype(L, fd, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, fd)) {
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    luaL_checktype(L, -1, LUA_TTABLE);
    cformat *fmt = &S->formats[n];
    memset(fmt, 0, sizeof *fmt);
    lua_getfield(L, -1, "kind");
    fmt->kind = (unsigned char)luaL_checkoption(L, -1, NULL, FORMAT_KINDS);
    lua_pop(L, 1);
    if (fmt->kind == FK_SHAPE) {
      lua_getfield(L, -1, "shape");
      compile_shape(L, fmt, name, luaL_checkstring(L, -1));
      lua_pop(L, 1);
    } else {
      lua_getfield(L, -1, "min");
      lua_getfield(L, -2, "max");
      fmt->min = luaL_checknumber(L, -2);
      fmt->max = luaL_checknumber(L, -1);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, ++n);
    lua_rawset(L, names);
  }
}

/* core.schema_checker{ max_depth = n, formats = { name = format }, [i] = { [j] = field } } → checker function,
 * where format = { kind = "shape", shape = pattern } | { kind = "whole_range", min = n, max = n } (rules.lua) and
 * field = { name, kind = "string"|"int"|"uint"|"float"|"bool"|"struct", struct = index (1-based, for "struct"),
 *   list, disabled, forbidden, required, max_chars, min_chars, min_items, max_items, min, max, enum = set,
 *   format = name, allow_zero }; a structure may also have
 *   format_by = { type_field = name, number_field = name, default_type = value, formats = { value = name } } and
 *   one_of = { { name, ... }, ... } (an action's root: at least one member of each group set).
 * Built once per schema by validate.lua. */
static int l_schema_checker(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int nstructs = (int)lua_rawlen(L, 1), nfields = 0, nformats = 0;
  lua_getfield(L, 1, "formats");
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pop(L, 1);
      nformats++;
    }
  }
  lua_pop(L, 1);
  size_t nslots = 0; /* name slots: per structure a power of two at least twice its member count */
  for (int i = 1; i <= nstructs; i++) {
    lua_rawgeti(L, 1, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    nfields += (int)lua_rawlen(L, -1);
    nslots += slots_for((int)lua_rawlen(L, -1));
    lua_pop(L, 1);
  }
  /* the userdata first: every later step may raise, and nothing else needs freeing */
  cschema *S = essbasic_newuserdata(L, sizeof(cschema) + (size_t)nformats * sizeof(cformat) +
                                           (size_t)nstructs * sizeof(cstruct) + (size_t)nfields * sizeof(cfield) +
                                           nslots * sizeof(nslot));
  int ud = lua_gettop(L);
  S->nstructs = nstructs;
  S->nfields = nfields;
  S->nformats = nformats;
  S->max_depth = opt_int_field(L, 1, "max_depth", 32);
  S->formats = (cformat *)(void *)(S + 1);
  S->structs = (cstruct *)(void *)(S->formats + nformats);
  S->fields = (cfield *)(void *)(S->structs + nstructs);
  nslot *next_slots = (nslot *)(void *)(S->fields + nfields);
  memset(next_slots, 0, nslots * sizeof(nslot));
  lua_getfield(L, 1, "formats");
  compile_formats(L, S, lua_gettop(L));
  int format_names = lua_gettop(L);
  lua_newtable(L);
  int refs = lua_gettop(L), nrefs = 0, fi = 0;
  for (int i = 1; i <= nstructs; i++) {
    lua_rawgeti(L, 1, i);
    int sd = lua_gettop(L);
    cstruct *st = &S->structs[i - 1];
    st->by_type_ref = st->by_number_ref = st->by_ref = st->by_default = 0;
    st->one_of_ref = ref_field(L, sd, "one_of", refs, &nrefs);
    if (st->one_of_ref) {
      lua_rawgeti(L, refs, st->one_of_ref);
      luaL_checktype(L, -1, LUA_TTABLE);
      for (lua_Integer g = 1; g <= (lua_Integer)lua_rawlen(L, -1); g++) {
        lua_rawgeti(L, -1, g);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_getfield(L, sd, "format_by");
    if (!lua_isnil(L, -1)) {
      int fb = lua_gettop(L);
      luaL_checktype(L, fb, LUA_TTABLE);
      st->by_type_ref = ref_field(L, fb, "type_field", refs, &nrefs);
      st->by_number_ref = ref_field(L, fb, "number_field", refs, &nrefs);
      if (!st->by_type_ref || !st->by_number_ref) {
        return luaL_error(L, "schema_checker: structure %d: format_by needs type_field and number_field", i);
      }
      lua_getfield(L, fb, "formats");
      luaL_checktype(L, -1, LUA_TTABLE);
      lua_newtable(L); /* type value → format index */
      lua_pushnil(L);
      while (lua_next(L, -3)) {
        int index = format_index(L, format_names, lua_gettop(L), "format_by");
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushinteger(L, index);
        lua_rawset(L, -4);
      }
      lua_getfield(L, fb, "default_type");
      if (!lua_isnil(L, -1)) {
        lua_rawget(L, -3);
        if (!lua_isnil(L, -1)) st->by_default = format_index(L, format_names, lua_gettop(L), "format_by");
      }
      lua_pop(L, 1);
      lua_rawseti(L, refs, ++nrefs);
      st->by_ref = nrefs;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    st->nrequired = 0;
    lua_newtable(L);
    int lookup = lua_gettop(L);
    int n = (int)lua_rawlen(L, sd);
    st->slots = next_slots;
    st->mask = slots_for(n) - 1;
    next_slots += slots_for(n);
    for (int j = 1; j <= n; j++, fi++) {
      lua_rawgeti(L, sd, j);
      int fd = lua_gettop(L);
      cfield *f = &S->fields[fi];
      memset(f, 0, sizeof *f);
      lua_getfield(L, fd, "kind");
      f->kind = (unsigned char)luaL_checkoption(L, -1, NULL, KINDS);
      lua_pop(L, 1);
      f->list = (unsigned char)bool_field(L, fd, "list");
      f->disabled = (unsigned char)bool_field(L, fd, "disabled");
      f->forbidden = (unsigned char)bool_field(L, fd, "forbidden");
      f->required = (unsigned char)bool_field(L, fd, "required");
      f->allow_zero = (unsigned char)bool_field(L, fd, "allow_zero");
      f->max_chars = opt_int_field(L, fd, "max_chars", -1);
      f->min_chars = opt_int_field(L, fd, "min_chars", -1);
      f->max_items = opt_int_field(L, fd, "max_items", -1);
      f->min_items = opt_int_field(L, fd, "min_items", -1);
      lua_getfield(L, fd, "min");
      f->has_min = (unsigned char)!lua_isnil(L, -1);
      f->min = f->has_min ? luaL_checknumber(L, -1) : 0;
      lua_getfield(L, fd, "max");
      f->has_max = (unsigned char)!lua_isnil(L, -1);
      f->max = f->has_max ? luaL_checknumber(L, -1) : 0;
      lua_pop(L, 2);
      f->enum_ref = ref_field(L, fd, "enum", refs, &nrefs);
      lua_getfield(L, fd, "format");
      f->format = lua_isnil(L, -1) ? 0 : format_index(L, format_names, lua_gettop(L), "member");
      lua_pop(L, 1);
      if (f->kind == K_STRUCT) {
        int s = opt_int_field(L, fd, "struct", 0);
        if (s < 1 || s > nstructs) return luaL_error(L, "schema_checker: member %d of structure %d: bad struct", j, i);
        f->struct_index = s - 1;
      }
      if (f->required) st->nrequired++;
      lua_getfield(L, fd, "name");
      luaL_checktype(L, -1, LUA_TSTRING);
      {
        /* the member's "Name": written once, by the encoder's own string writer */
        size_t nlen;
        const char *nm = lua_tolstring(L, -1, &nlen);
        char kbuf[256];
        jbuf kb;
        lua_pushnil(L); /* the key buffer's slot, should a name not fit kbuf */
        jbuf_init(&kb, L, lua_gettop(L), kbuf, sizeof kbuf);
        essbasic_json_string(&kb, nm, nlen);
        jbuf_addc(&kb, ':');
        lua_pushlstring(L, kb.p, kb.len);
        f->key_json = lua_tolstring(L, -1, &f->key_json_len);
        lua_rawseti(L, refs, ++nrefs); /* kept alive: the pointer stays valid */
        lua_pop(L, 1);
      }
      const char *name = lua_tostring(L, -1); /* kept alive by the lookup table, itself kept in refs */
      unsigned k = slot_of(name, st->mask);
      while (st->slots[k].name) k = (k + 1) & st->mask;
      st->slots[k].name = name;
      st->slots[k].field = fi;
      lua_pushinteger(L, fi);
      lua_rawset(L, lookup);
      lua_pop(L, 1);
    }
    lua_rawseti(L, refs, ++nrefs);
    st->lookup_ref = nrefs;
    lua_pop(L, 1);
  }
  lua_pushvalue(L, ud);
  lua_pushvalue(L, refs);
  lua_pushcclosure(L, l_check, 2);
  return 1;
}

void essbasic_open_check(lua_State *L) {
  static const luaL_Reg fns[] = {{"utf8_len", l_utf8_len}, {"schema_checker", l_schema_checker}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
