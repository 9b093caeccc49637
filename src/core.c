/* essbasic.core: the C half of essbasic. Each part registers itself; nothing here does I/O. */
#include "core.h"

#define ESSBASIC_CORE_VERSION "0.1.0"

#if defined(_WIN32)
#define ESSBASIC_EXPORT __declspec(dllexport)
#else
#define ESSBASIC_EXPORT __attribute__((visibility("default")))
#endif

ESSBASIC_EXPORT int luaopen_essbasic_core(lua_State *L);
ESSBASIC_EXPORT int luaopen_essbasic_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, ESSBASIC_CORE_VERSION);
  lua_setfield(L, -2, "version");
  essbasic_open_crypto(L);
  essbasic_open_json(L);
  essbasic_open_http(L);
  essbasic_open_clock(L);
  essbasic_open_check(L);
  return 1;
}
