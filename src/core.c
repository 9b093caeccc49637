/* essbasic.core: the C half of essbasic. Each part registers itself; nothing here does I/O. */
#include "core.h"

#if defined(_WIN32)
#define ESSBASIC_EXPORT __declspec(dllexport)
#else
#define ESSBASIC_EXPORT __attribute__((visibility("default")))
#endif

/* __tostring of a class made without its own: the class name (its metatable's __metatable). */
static int class_name(lua_State *L) {
  if (!lua_getmetatable(L, 1)) return 0;
  lua_getfield(L, -1, "__metatable");
  return 1;
}

void essbasic_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                        lua_CFunction tostring) {
  if (!luaL_newmetatable(L, name)) {
    lua_pop(L, 1); /* already made (a second luaopen in the same state) */
    return;
  }
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close"); /* Lua 5.4 to-be-closed variables; ignored by LuaJIT */
  lua_pushcfunction(L, tostring != NULL ? tostring : class_name);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__metatable"); /* getmetatable gives the name; setmetatable refuses */
  lua_pop(L, 1);
}

ESSBASIC_EXPORT int luaopen_essbasic_core(lua_State *L);
ESSBASIC_EXPORT int luaopen_essbasic_core(lua_State *L) {
  lua_newtable(L); /* no version of its own: the release's is lua/essbasic/version.lua's, the only copy */
  essbasic_open_crypto(L);
  essbasic_open_json(L);
  essbasic_open_http(L);
  essbasic_open_clock(L);
  essbasic_open_check(L);
  essbasic_open_files(L);
  essbasic_open_process(L);
  return 1;
}
