-- The environment the code runs in, decided here once: whether it is inside nginx, its clocks, how it waits, its
-- light threads, and where a message goes when the caller gave no logger. Inside nginx ngx.sleep yields to the
-- other requests of the worker instead of blocking it; elsewhere the C core's monotonic clock and nanosleep.
-- Nothing else in the library reads _G.ngx to learn where it runs.

local core = require("essbasic.core")

local type, rawget = type, rawget

local M = {}

-- True when this code runs inside nginx's Lua module (OpenResty or Debian's libnginx-mod-http-lua).
function M.in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.config) == "table" and ngx.config.ngx_lua_version ~= nil
end

-- interval_clock() → seconds, for measuring intervals only (deadlines, retry and rate-limit waits): plain Lua reads
-- the monotonic clock; nginx's Lua module offers none, so inside nginx it is ngx.now() after ngx.update_time(): the
-- wall clock at millisecond resolution, which steps when the system clock is set.
-- sleep(seconds): yields inside nginx, blocks the thread elsewhere.
-- light_threads: ngx.thread inside nginx (spawn, wait), else nil.
if M.in_nginx() then
  local ngx = rawget(_G, "ngx")
  local update_time, ngx_now = ngx.update_time, ngx.now
  function M.interval_clock()
    update_time()
    return ngx_now()
  end
  M.sleep = ngx.sleep
  M.light_threads = type(ngx.thread) == "table" and ngx.thread or nil
else
  M.interval_clock = core.monotonic
  M.sleep = core.sleep
end

-- nginx's lua_shared_dict of that name, or nil (none of that name, or not in nginx).
function M.shared_dict(name)
  local ngx = rawget(_G, "ngx")
  local dicts = type(ngx) == "table" and ngx.shared or nil
  return dicts and dicts[name] or nil
end

-- Wall-clock seconds since the epoch (the same in every worker and on every machine with a set clock).
M.time = core.time

-- The logger of every part that logs (the client, the Redis rate limit, callbacks and their store) when the caller
-- gave none: a function(level, message), level "debug", "info", "warn" or "error". Inside nginx it writes to
-- nginx's error log at the matching level (nginx's error_log level then decides), "debug" only when verbose;
-- elsewhere to stderr, warnings and errors only unless verbose (a client's debug = true), so that a command's or a
-- batch job's stderr stays its own.
local NGX_LEVELS = { debug = "DEBUG", info = "INFO", warn = "WARN", error = "ERR" }
local ALWAYS = { warn = true, error = true }

function M.default_logger(verbose)
  return function(level, message)
    local ngx = M.in_nginx() and rawget(_G, "ngx")
    if ngx and ngx.log then
      if level ~= "debug" or verbose then ngx.log(ngx[NGX_LEVELS[level] or "WARN"], message) end
    elseif verbose or ALWAYS[level] then
      io.stderr:write(message, "\n")
    end
  end
end

M.logger = M.default_logger(false)

-- A warning through the default logger (for the parts that have no client's logger at hand).
function M.warn(message)
  M.logger("warn", message)
end

return M
