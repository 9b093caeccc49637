-- 50 concurrent ChannelCreateFlowGroupByFiles calls through an nginx handler with ONE worker, against an API that
-- answers after 200 ms: with the cosocket transport (what essbasic picks inside nginx) and, as the baseline
-- measured in the same run, with the libcurl transport forced inside nginx (transport = "curl"), which blocks
-- the worker for every call. Prints the median of 3 rounds for each and the ratio.
--   lua5.4 bench/openresty_concurrency.lua [rounds]      (from the repository root, after `make`)

package.path = "lua/?.lua;lua/?/init.lua;?.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath

local core = require("essbasic.core")
local nginx = require("tools.nginx")

local ROUNDS = tonumber(arg[1]) or 3
local CALLS = 50
local API_DELAY = 0.2

local API_CONF = [=[
  server {
    listen 127.0.0.1:%PORT%;
    keepalive_requests 100000;
    location / {
      content_by_lua_block {
        ngx.req.read_body()
        ngx.sleep(@DELAY@)
        ngx.header["Content-Type"] = "application/json"
        ngx.print('{"Response":{"FlowGroupId":"g","FlowIds":["f1","f2"],"RequestId":"r"}}')
      }
    }
  }
]=]

local APP_CONF = [=[
  init_by_lua_block {
    local essbasic = require("essbasic")
    local function handler(transport)
      local client
      return function()
        client = client or essbasic.new{ secret_id = "AKIDbench", secret_key = "bench-secret", endpoint = "@API@",
          rate_limit = false, transport = transport, timeout = 60 }
        local resp, err = client:call("ChannelCreateFlowGroupByFiles", { FlowGroupName = "bench" },
          { validate = false })
        ngx.status = resp and 200 or 502
        ngx.print(resp and resp.FlowGroupId or tostring(err))
      end
    end
    bench = { cosocket = handler(nil), blocking = handler("curl") }
  }
  server {
    listen 127.0.0.1:%PORT%;
    location = /cosocket { content_by_lua_block { bench.cosocket() } }
    location = /blocking { content_by_lua_block { bench.blocking() } }
  }
]=]

local function round(port, path)
  local m = core.http_multi{ timeout = 120 }
  local started = core.monotonic()
  for i = 1, CALLS do m:add(i, "GET", "http://127.0.0.1:" .. port .. path, {}) end
  local ok = 0
  while m:pending() > 0 do
    for _, r in ipairs(m:poll(1)) do
      if r.status == 200 then ok = ok + 1 end
    end
  end
  local elapsed = core.monotonic() - started
  m:close()
  assert(ok == CALLS, path .. ": only " .. ok .. " of " .. CALLS .. " calls succeeded")
  return elapsed
end

local function list(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = string.format("%.3f", x) end
  return table.concat(t, " ")
end

local function median(xs)
  table.sort(xs)
  return xs[math.floor((#xs + 1) / 2)]
end

local api = nginx.start{ http = API_CONF:gsub("@DELAY@", tostring(API_DELAY)) }
local app = nginx.start{ http = APP_CONF:gsub("@API@", "http://127.0.0.1:" .. api.port) }
local ok, err = pcall(function()
  local figures = {}
  for _, path in ipairs({ "/cosocket", "/blocking" }) do
    round(app.port, path) -- warm-up: modules loaded, client made, connections opened
    local times = {}
    for r = 1, ROUNDS do times[r] = round(app.port, path) end
    local rounds = list(times)
    figures[path] = median(times)
    print(string.format("%-9s %d concurrent calls, API %.0f ms, 1 worker: median %.3f s of %d rounds (%s)",
      path:sub(2), CALLS, API_DELAY * 1000, figures[path], ROUNDS, rounds))
  end
  print(string.format("blocking / cosocket: %.1fx", figures["/blocking"] / figures["/cosocket"]))
end)
app:stop()
api:stop()
if not ok then error(err, 0) end
