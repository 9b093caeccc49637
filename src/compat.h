/* One source for Lua 5.4 and for LuaJIT 2.1 (the Lua 5.1 C API that OpenResty uses). LuaJIT 2.1 already has
 * luaL_setfuncs, luaL_newlib, luaL_testudata and luaL_setmetatable; only the rest is bridged here. */
#ifndef ESSBASIC_COMPAT_H
#define ESSBASIC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* Lua 5.4, Lua 5.3 and LuaJIT 2.1. LuaJIT's headers say 5.1 like PUC Lua 5.1's, which lacks the 5.2 functions
 * LuaJIT has (luaL_setfuncs, luaL_setmetatable, lua_tonumberx...): PUC 5.1 is told apart by LUAI_MAXSTACK, which
 * LuaJIT's luaconf.h defines and PUC 5.1's does not. */
#if LUA_VERSION_NUM < 501 || LUA_VERSION_NUM > 504 || LUA_VERSION_NUM == 502 || \
    (LUA_VERSION_NUM == 501 && !defined(LUAI_MAXSTACK))
#error "essbasic supports Lua 5.4, Lua 5.3 and LuaJIT 2.1, not PUC Lua 5.1 or 5.2 (Debian's luarocks defaults to 5.1: luarocks --lua-version=5.4 ...)"
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
