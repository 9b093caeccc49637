/* Time for retries, backoff and the rate limiter outside nginx (inside nginx, ngx.now/ngx.sleep are used). */
#include <errno.h>
#include <math.h>
#include <time.h>

#include "core.h"

static int l_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static int l_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s <= 86400 && s == s, 1, "seconds must be between 0 and 86400");
  struct timespec req, rem;
  req.tv_sec = (time_t)s;
  req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
  if (req.tv_nsec >= 1000000000L) req.tv_nsec = 999999999L;
  while (nanosleep(&req, &rem) != 0 && errno == EINTR) req = rem;
  return 0;
}

void essbasic_open_clock(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"monotonic", l_monotonic}, {"time", l_time}, {"sleep", l_sleep}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
