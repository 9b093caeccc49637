/* Process-wide settings for the command line (never used inside nginx): catching SIGINT and SIGTERM so that a
 * batch can stop between waves and journal what it has, and a private umask for the files it creates.
 *
 * The handler only stores the signal's number in a volatile sig_atomic_t (async-signal-safe); Lua polls it with
 * signal_caught(). SA_RESETHAND puts the default action back as the first signal arrives, so a second one ends
 * the process at once (the shell reports 128 + its number). SA_RESTART restarts the system calls that can be
 * restarted; the flag is read between waves. spec/batch_spec.lua signals runs with requests in flight and checks
 * that every answer was journaled and agrees with the server's own record. */
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"

static volatile sig_atomic_t caught = 0;

static void on_signal(int sig) {
  caught = sig;
}

/* catch_signals() installs the handler for SIGINT and SIGTERM; → true, or nil and a message. */
static int l_catch_signals(lua_State *L) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  caught = 0;
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "sigaction failed");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* signal_caught() → "SIGINT", "SIGTERM" or nil: the first signal caught since catch_signals(). */
static int l_signal_caught(lua_State *L) {
  int sig = caught;
  if (sig == SIGINT) lua_pushliteral(L, "SIGINT");
  else if (sig == SIGTERM) lua_pushliteral(L, "SIGTERM");
  else lua_pushnil(L);
  return 1;
}

/* private_umask() makes every file the process creates from now on readable by its owner only (0600; folders
 * 0700). → the previous mask. */
static int l_private_umask(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)umask(077));
  return 1;
}

void essbasic_open_process(lua_State *L) {
  static const luaL_Reg fns[] = {{"catch_signals", l_catch_signals},
                                 {"signal_caught", l_signal_caught},
                                 {"private_umask", l_private_umask},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
