/* One source for Lua 5.4 and for LuaJIT 2.1 (the Lua 5.1 C API that OpenResty uses). LuaJIT 2.1 already has
 * luaL_setfuncs, luaL_newlib, luaL_testudata and luaL_setmetatable; only the rest is bridged here. */
#ifndef ESSBASIC_COMPAT_H
#define ESSBASIC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_checkversion(L) ((void)0)
/* 5.1 has only doubles: an integral double within +-2^53 counts as an integer. */
static inline int essbasic_isinteger(lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TNUMBER) return 0;
  lua_Number n = lua_tonumber(L, i);
  return n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == (lua_Number)(long long)n;
}
#define lua_isinteger(L, i) essbasic_isinteger((L), (i))
#endif

#if LUA_VERSION_NUM >= 504
#define essbasic_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define essbasic_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

#endif
