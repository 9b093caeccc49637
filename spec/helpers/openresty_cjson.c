/* The values OpenResty's lua-cjson adds to the upstream module, and nothing else: a stand-in for tests where
 * only Debian's lua-cjson 2.1.0 (which has none of them) is installed. As in OpenResty's cjson: null is a light
 * userdata NULL, empty_array a light userdata pointing at a static byte, array_mt and empty_array_mt two tables.
 * Built by spec/json_spec.lua with the compiler and the Lua headers of the suite's interpreter. */
#include <lua.h>

static char json_empty_array;

int luaopen_cjson(lua_State *L);

int luaopen_cjson(lua_State *L) {
  lua_newtable(L);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushlightuserdata(L, &json_empty_array);
  lua_setfield(L, -2, "empty_array");
  lua_newtable(L);
  lua_setfield(L, -2, "array_mt");
  lua_newtable(L);
  lua_setfield(L, -2, "empty_array_mt");
  lua_pushliteral(L, "openresty markers only");
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
