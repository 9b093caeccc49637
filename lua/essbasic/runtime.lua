-- Time and waiting where the code runs: inside nginx ngx.sleep yields to other requests instead of blocking the
-- worker; elsewhere the C core's monotonic clock and nanosleep.

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

return M
