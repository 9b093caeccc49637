/* The libFuzzer driver shared by every harness: one lua_State per process with essbasic.core preloaded (the core's
 * sources are compiled into the fuzzer, so their coverage guides the search) and package.path on the repo's lua/
 * directory. The harness itself is fuzz/<FUZZ_NAME>.lua, a chunk returning function(data). Any error that escapes
 * that function is a bug and aborts: the chunks pcall the calls that may legitimately raise, and call
 * fail(message) when a property they check does not hold (the chunk receives fail as its argument). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#if !defined(FUZZ_NAME) || !defined(FUZZ_DIR) || !defined(FUZZ_LUA_DIR)
#error "FUZZ_NAME (the harness), FUZZ_DIR (fuzz/) and FUZZ_LUA_DIR (lua/) must be defined"
#endif

int luaopen_essbasic_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fixed-seed runs (fuzz/run with FUZZ_RUNS, what CI does) must explore the same inputs every time. Lua 5.4 seeds
 * its string hashes, and so the order lua_next walks a table in the core, from time() and from addresses: fuzz/run
 * turns address randomisation off (setarch -R) and sets FUZZ_FIXED_TIME, which this time() (it takes the place of
 * libc's for liblua5.4 too) then returns. Without the variable it is the real clock. */
time_t time(time_t *out) {
  static int fixed = -1;
  static time_t fixed_value;
  if (fixed < 0) {
    const char *v = getenv("FUZZ_FIXED_TIME");
    fixed = v != NULL && *v != '\0';
    if (fixed) fixed_value = (time_t)strtoll(v, NULL, 10);
  }
  time_t now = fixed_value;
  if (!fixed) {
    struct timespec ts;
    now = clock_gettime(CLOCK_REALTIME, &ts) == 0 ? ts.tv_sec : (time_t)-1;
  }
  if (out != NULL) *out = now;
  return now;
}

static lua_State *state;
static int check_ref = LUA_NOREF;
static unsigned long runs;

/* fail(message): a property the harness checks does not hold. */
static int l_fuzz_fail(lua_State *L) {
  fprintf(stderr, "fuzz property violated: %s\n", luaL_checkstring(L, 1));
  abort();
}

static void setup(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_essbasic_core);
  lua_setfield(L, -2, "essbasic.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushstring(L, FUZZ_LUA_DIR "/?.lua;" FUZZ_LUA_DIR "/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath"); /* only the core compiled in here, never an installed one */
  lua_pop(L, 1);
  int loaded = luaL_loadfile(L, FUZZ_DIR "/" FUZZ_NAME ".lua");
  if (loaded == LUA_OK) lua_pushcfunction(L, l_fuzz_fail);
  if (loaded != LUA_OK || lua_pcall(L, 1, 1, 0) != LUA_OK ||
      lua_type(L, -1) != LUA_TFUNCTION) {
    fprintf(stderr, FUZZ_NAME ": cannot load the harness: %s\n", lua_tostring(L, -1));
    abort();
  }
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  state = L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (state == NULL) setup();
  lua_State *L = state;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, FUZZ_NAME ": an error escaped the harness: %s\n", lua_tostring(L, -1));
    abort();
  }
  /* A full collection now and then runs every __gc (signers, buffers) under the sanitizers. */
  if (++runs % 256 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
