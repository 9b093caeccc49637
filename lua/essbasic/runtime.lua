-- Time and waiting where the code runs: inside nginx ngx.sleep yields to other requests instead of blocking the
-- worker; elsewhere the C core's monotonic clock and nanosleep. And where a warning goes when the caller gave no
-- logger: nginx's error log (WARN), else stderr.

local core = require("essbasic.core")
local transport = require("essbasic.transport")

local M = {}

if transport.in_nginx() then
  local ngx = rawget(_G, "ngx")
  local update_time, ngx_now, ngx_sleep = ngx.update_time, ngx.now, ngx.sleep
  function M.now()
    update_time()
    return ngx_now()
  end
  M.sleep = ngx_sleep
else
  M.now = core.monotonic
  M.sleep = core.sleep
end

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
    local ngx = transport.in_nginx() and rawget(_G, "ngx")
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
