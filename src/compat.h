/* One source for Lua 5.4, 5.3, 5.1 and LuaJIT 2.1. LuaJIT 2.1 speaks the Lua 5.1 C API (and ABI) plus a few 5.2
 * functions; PUC 5.1 lacks those, so they are bridged here too. A core built against PUC 5.1's headers (Debian's
 * luarocks defaults to 5.1) therefore loads in LuaJIT and OpenResty as well. */
#ifndef ESSBASIC_COMPAT_H
#define ESSBASIC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 501 || LUA_VERSION_NUM > 504 || LUA_VERSION_NUM == 502
#error "essbasic supports Lua 5.4, 5.3, 5.1 and LuaJIT 2.1, not Lua 5.2"
#endif

/* PUC 5.1 (LuaJIT's luaconf.h defines LUAI_MAXSTACK, PUC 5.1's does not): the 5.2 functions LuaJIT already has. */
#if LUA_VERSION_NUM == 501 && !defined(LUAI_MAXSTACK)
static inline void essbasic_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, nup) essbasic_setfuncs((L), (l), (nup))
#define luaL_setmetatable(L, name) (luaL_getmetatable((L), (name)), lua_setmetatable((L), -2))
static inline lua_Number essbasic_tonumberx(lua_State *L, int i, int *isnum) {
  lua_Number n = lua_tonumber(L, i);
  if (isnum) *isnum = n != 0 || lua_isnumber(L, i);
  return n;
}
#define lua_tonumberx(L, i, isnum) essbasic_tonumberx((L), (i), (isnum))
#endif

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_checkversion(L) ((void)0)
#define lua_absindex(L, i) ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)
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
