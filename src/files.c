/* What the library needs to know about a file it reads: its permission bits and owner (the credentials profile
 * file is warned about when others may read it). Nothing here opens, reads or writes a file. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"

/* core.file_mode(path) → permission bits (st_mode & 07777), owner uid; or nil, why. Follows symlinks, as opening
 * the file does. */
static int l_file_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  return 2;
}

void essbasic_open_files(lua_State *L) {
  static const luaL_Reg fns[] = {{"file_mode", l_file_mode}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
