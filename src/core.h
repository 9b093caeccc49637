/* Each part of essbasic.core adds its functions to the module table on top of the stack. */
#ifndef ESSBASIC_CORE_H
#define ESSBASIC_CORE_H

#include "compat.h"

void essbasic_open_crypto(lua_State *L); /* crypto.c: hashes, HMAC, TC3 signer, base64, AES */
void essbasic_open_json(lua_State *L);   /* json.c: encoder and decoder */
void essbasic_open_http(lua_State *L);   /* http.c: libcurl sessions (easy and multi) */
void essbasic_open_clock(lua_State *L);  /* clock.c: monotonic time and sleeping */
void essbasic_open_check(lua_State *L);  /* check.c: the validator's fast path, UTF-8 text length */
void essbasic_open_files(lua_State *L);  /* files.c: a file's permission bits and owner */
void essbasic_open_process(lua_State *L); /* process.c: SIGINT/SIGTERM flag, private umask (the CLI) */

/* The metatable `name` of a class of userdata: methods as __index, close as __gc and __close (so it must be
 * idempotent), tostring as __tostring (NULL: the name), and the name as __metatable. */
void essbasic_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                        lua_CFunction tostring);

#endif
