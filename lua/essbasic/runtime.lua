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
  function M.warn(message)
    ngx.log(ngx.WARN, message)
  end
else
  M.now = core.monotonic
  M.sleep = core.sleep
  function M.warn(message)
    io.stderr:write(message, "\n")
  end
end

M.time = core.time

return M
