/* What json.c shares with check.c, which writes the JSON of a request while it checks it: the growing buffer and
 * the writers of strings and numbers, so both produce the same bytes for the same value. */
#ifndef ESSBASIC_JSON_H
#define ESSBASIC_JSON_H

#include <string.h>

#include "compat.h"

#define JSON_ARRAY_MT "essbasic.json_array" /* registry name of the array metatable */

/* The buffer starts on the C stack and, when it overflows, moves into a userdata kept at a reserved stack slot:
 * Lua owns every byte, so a Lua error (out of memory) cannot leak anything. */
typedef struct {
  lua_State *L;
  int slot; /* stack slot holding the userdata once the buffer has left the C stack */
  char *p;
  size_t len, cap;
} jbuf;

static inline void jbuf_init(jbuf *b, lua_State *L, int slot, char *initial, size_t cap) {
  b->L = L;
  b->slot = slot;
  b->p = initial;
  b->len = 0;
  b->cap = cap;
}

void essbasic_jbuf_grow(jbuf *b, size_t need);

static inline void jbuf_need(jbuf *b, size_t n) {
  if (b->cap - b->len < n) essbasic_jbuf_grow(b, n);
}

static inline void jbuf_add(jbuf *b, const char *s, size_t n) {
  jbuf_need(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static inline void jbuf_addc(jbuf *b, char c) {
  jbuf_need(b, 1);
  b->p[b->len++] = c;
}

/* Values made by lua-cjson, whichever copy the program loaded (package.loaded.cjson or cjson.safe; OpenResty's
 * has the markers, Debian's 2.1.0 only null). Looked up only when a value is not one of essbasic's own, so plain
 * tables cost nothing.
 *   essbasic_json_is_null: a light userdata NULL (json.null, cjson.null, ngx.null)
 *   essbasic_json_is_empty_array: cjson.empty_array (written as [])
 *   essbasic_json_is_cjson_array: a table whose metatable is cjson.array_mt or cjson.empty_array_mt (a list) */
static inline int essbasic_json_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}
int essbasic_json_is_empty_array(lua_State *L, int idx);
int essbasic_json_is_cjson_array(lua_State *L, int idx);

/* A JSON string with the escapes JSON requires (UTF-8 is passed through: validation checks it). */
void essbasic_json_string(jbuf *b, const char *s, size_t len);
/* The number at stack index idx, which must be finite: integers exactly, floats shortest-round-trip. */
void essbasic_json_number(jbuf *b, lua_State *L, int idx);

#endif
