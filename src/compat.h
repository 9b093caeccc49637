/* One source for Lua 5.4 and for LuaJIT 2.1 (the Lua 5.1 C API that OpenResty uses).
 * Only the handful of calls the core needs are bridged here. */
#ifndef ESSBASIC_COMPAT_H
#define ESSBASIC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_setfuncs(L, l, nup) luaL_register((L), NULL, (l))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_register((L), NULL, (l)))
static inline int essbasic_isinteger(lua_State *L, int i) {
  /* 5.1 has only doubles: an integral double within 2^53 counts as an integer. */
  if (lua_type(L, i) != LUA_TNUMBER) return 0;
  lua_Number n = lua_tonumber(L, i);
  return n == (lua_Number)(long long)n && n >= -9007199254740992.0 && n <= 9007199254740992.0;
}
#define lua_isinteger(L, i) essbasic_isinteger((L), (i))
#define luaL_checkversion(L) ((void)0)
#define luaL_setmetatable(L, name) (luaL_getmetatable((L), (name)), lua_setmetatable((L), -2))
#define luaL_testudata(L, i, name) essbasic_testudata((L), (i), (name))
static inline void *essbasic_testudata(lua_State *L, int i, const char *name) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, name);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#endif

#if LUA_VERSION_NUM >= 504
#define essbasic_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define essbasic_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

#endif
